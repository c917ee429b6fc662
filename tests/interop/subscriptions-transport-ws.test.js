// The legacy `graphql-ws` subprotocol, spoken by Apollo's old subscriptions-transport-ws
// client (what older Apollo and GraphQL Playground use): everything over its socket.
import { test } from 'node:test';
import subscriptionsTransportWs from 'subscriptions-transport-ws';
import WebSocket from 'ws';

import { EXERCISE_TIMEOUT_MS, connectionParams, exercise, wsUrl } from './lib/scenario.js';

const { SubscriptionClient } = subscriptionsTransportWs;

test('subscriptions-transport-ws (legacy protocol): query, mutation, live metrics and status events', { timeout: EXERCISE_TIMEOUT_MS }, async (t) => {
  const client = new SubscriptionClient(wsUrl, { reconnect: false, connectionParams }, WebSocket);
  const once = (query, variables) =>
    new Promise((resolve, reject) => {
      const subscription = client.request({ query, variables }).subscribe({
        next: (result) => {
          resolve(result);
          subscription.unsubscribe();
        },
        error: reject,
      });
    });
  const adapter = {
    query: once,
    mutate: once,
    settle: () => once('{ __typename }', {}),
    subscribe(query, variables, onResult) {
      let subscription;
      const done = new Promise((resolve, reject) => {
        subscription = client.request({ query, variables }).subscribe({ next: onResult, error: reject, complete: resolve });
      });
      return { done, unsubscribe: () => subscription.unsubscribe() };
    },
  };
  try {
    const outcome = await exercise('subscriptions-transport-ws', adapter);
    t.diagnostic(outcome.summary);
  } finally {
    client.close();
  }
});
