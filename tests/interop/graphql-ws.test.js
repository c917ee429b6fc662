// graphql-ws's own client (the reference graphql-transport-ws implementation), everything
// over the websocket: query, mutation, both subscriptions.
import { test } from 'node:test';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

import { EXERCISE_TIMEOUT_MS, connectionParams, exercise, wsUrl } from './lib/scenario.js';

function adapter(client) {
  const once = async (query, variables) => {
    for await (const result of client.iterate({ query, variables })) {
      return result;
    }
    throw new Error('no result');
  };
  return {
    query: once,
    mutate: once,
    settle: () => once('{ __typename }', {}),
    subscribe(query, variables, onResult) {
      let unsubscribe;
      const done = new Promise((resolve, reject) => {
        unsubscribe = client.subscribe({ query, variables }, { next: onResult, error: reject, complete: resolve });
      });
      return { done, unsubscribe };
    },
  };
}

test('graphql-ws client: query, mutation, live metrics and status events', { timeout: EXERCISE_TIMEOUT_MS }, async (t) => {
  const client = createClient({ url: wsUrl, webSocketImpl: WebSocket, retryAttempts: 0, connectionParams });
  try {
    const outcome = await exercise('graphql-ws', adapter(client));
    t.diagnostic(outcome.summary);
  } finally {
    await client.dispose();
  }
});
