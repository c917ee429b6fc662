// urql's core client: queries over GET (its default), mutations over POST, subscriptions
// through subscriptionExchange onto a graphql-ws client; results read as wonka sources.
import { test } from 'node:test';
import { Client, fetchExchange, subscriptionExchange } from '@urql/core';
import { createClient } from 'graphql-ws';
import { onEnd, pipe, subscribe } from 'wonka';
import WebSocket from 'ws';

import { EXERCISE_TIMEOUT_MS, authHeaders, connectionParams, exercise, httpUrl, wsUrl } from './lib/scenario.js';

/** urql reports GraphQL errors as one CombinedError; the exercise reads `errors` as sent. */
const asSent = ({ data, error }) => ({
  data,
  errors: error ? (error.graphQLErrors.length ? error.graphQLErrors : [error.message]) : undefined,
});

/** When a subscription completes, urql repeats its last result with `hasNext: false`. */
const isEndMarker = (result, previous) => result.hasNext === false && previous !== undefined && result.data === previous.data;

test('urql: query (GET), mutation, live metrics and status events', { timeout: EXERCISE_TIMEOUT_MS }, async (t) => {
  const wsClient = createClient({ url: wsUrl, webSocketImpl: WebSocket, retryAttempts: 0, connectionParams });
  const urql = new Client({
    url: httpUrl,
    fetchOptions: { headers: authHeaders },
    exchanges: [
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || '' };
          return {
            subscribe(sink) {
              return { unsubscribe: wsClient.subscribe(input, sink) };
            },
          };
        },
      }),
    ],
  });
  const adapter = {
    query: (query, variables) => urql.query(query, variables, { requestPolicy: 'network-only' }).toPromise().then(asSent),
    mutate: (mutation, variables) => urql.mutation(mutation, variables).toPromise().then(asSent),
    settle: async () => {
      await new Promise((resolve) => setImmediate(resolve)); // let urql dispatch the subscription
      for await (const result of wsClient.iterate({ query: '{ __typename }' })) return result;
    },
    subscribe(query, variables, onResult) {
      let subscription;
      let previous;
      const done = new Promise((resolve) => {
        subscription = pipe(
          urql.subscription(query, variables),
          onEnd(resolve),
          subscribe((result) => {
            if (!isEndMarker(result, previous)) onResult(asSent(result));
            previous = result;
          }),
        );
      });
      return { done, unsubscribe: () => subscription.unsubscribe() };
    },
  };
  try {
    const outcome = await exercise('urql', adapter);
    t.diagnostic(outcome.summary);
  } finally {
    await wsClient.dispose();
  }
});
