// Starts the Custos GraphQL playground.
//
// This lives in its own file, not in a <script> block, so that the page's
// Content-Security-Policy can allow scripts from our own origin only and
// refuse every inline script. React, ReactDOM and GraphiQL are globals set by
// the UMD bundles the page loads before this file.
(function () {
  'use strict';

  // Our endpoint accepts `application/json` POST bodies only; GraphiQL's
  // fetcher sends exactly that, with the session cookie (same origin).
  var fetcher = GraphiQL.createFetcher({ url: '/graphql' });

  var startingQuery = [
    '# Custos GraphQL playground.',
    '# Run the query below with Ctrl-Enter or the run button.',
    '{',
    '  policy {',
    '    version',
    '  }',
    '}',
    ''
  ].join('\n');

  var mount = document.getElementById('playground');
  ReactDOM.createRoot(mount).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: startingQuery,
      // Headers (bearer tokens, for instance) stay out of localStorage.
      shouldPersistHeaders: false
    })
  );
})();
