// Apollo Client (core, no React): HttpLink for queries and mutations, GraphQLWsLink for
// subscriptions, split on the operation type, as Apollo documents it.
import { test } from 'node:test';
import { ApolloClient, HttpLink, InMemoryCache, gql, split } from '@apollo/client/core/index.js';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions/index.js';
import { getMainDefinition } from '@apollo/client/utilities/index.js';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

import { EXERCISE_TIMEOUT_MS, authHeaders, connectionParams, exercise, httpUrl, wsUrl } from './lib/scenario.js';

test('Apollo Client: query, mutation, live metrics and status events', { timeout: EXERCISE_TIMEOUT_MS }, async (t) => {
  const wsClient = createClient({ url: wsUrl, webSocketImpl: WebSocket, retryAttempts: 0, connectionParams });
  const isSubscription = ({ query }) => {
    const definition = getMainDefinition(query);
    return definition.kind === 'OperationDefinition' && definition.operation === 'subscription';
  };
  const link = split(isSubscription, new GraphQLWsLink(wsClient), new HttpLink({ uri: httpUrl, fetch, headers: authHeaders }));
  const apollo = new ApolloClient({ link, cache: new InMemoryCache() });
  const adapter = {
    query: (query, variables) => apollo.query({ query: gql(query), variables, fetchPolicy: 'no-cache' }),
    mutate: (mutation, variables) => apollo.mutate({ mutation: gql(mutation), variables }),
    // The subscription's socket: a round trip on it comes back after the subscribe message.
    settle: async () => {
      for await (const result of wsClient.iterate({ query: '{ __typename }' })) return result;
    },
    subscribe(query, variables, onResult) {
      let subscription;
      const done = new Promise((resolve, reject) => {
        subscription = apollo
          .subscribe({ query: gql(query), variables })
          .subscribe({ next: onResult, error: reject, complete: resolve });
      });
      return { done, unsubscribe: () => subscription.unsubscribe() };
    },
  };
  try {
    const outcome = await exercise('apollo', adapter);
    t.diagnostic(outcome.summary);
  } finally {
    apollo.stop();
    await wsClient.dispose();
  }
});
