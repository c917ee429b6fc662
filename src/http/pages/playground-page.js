// Starts GraphQL Playground on /playground, signed in with the token GraphiQL keeps (same
// origin, same storage key; `#token=…` works here too).
(function () {
  'use strict';
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  if (fragment.get('token')) {
    localStorage.setItem('metric-vault-token', fragment.get('token'));
    history.replaceState(null, '', window.location.pathname);
  }
  const token = localStorage.getItem('metric-vault-token');
  const endpoint = new URL('/graphql', window.location.href).href;
  GraphQLPlayground.init(document.getElementById('root'), {
    endpoint,
    subscriptionEndpoint: endpoint.replace(/^http/, 'ws'),
    headers: token ? { authorization: 'Bearer ' + token } : {},
    settings: { 'request.credentials': 'omit' },
  });
})();
