// Starts GraphiQL on the page served at GET /graphql (its libraries are served by the server
// too: the page must work with no internet).
(function () {
  'use strict';
  const url = new URL('/graphql', window.location.href);
  const wsUrl = url.href.replace(/^http/, 'ws');
  // An API token arrives once in the page's fragment (`#token=…`, never sent to a server),
  // is kept in this browser's storage and sent with every request and websocket.
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  if (fragment.get('token')) {
    localStorage.setItem('metric-vault-token', fragment.get('token'));
    history.replaceState(null, '', window.location.pathname);
  }
  const token = localStorage.getItem('metric-vault-token');
  const auth = token ? { authorization: 'Bearer ' + token } : {};
  const fetcher = GraphiQL.createFetcher({
    url: url.href,
    headers: auth,
    wsClient: graphqlWs.createClient({ url: wsUrl, connectionParams: () => auth }),
  });
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, { fetcher, defaultEditorToolsVisibility: true })
  );
})();
