// GraphiQL for GET /graphql. The server puts the page's settings in
// <script type="application/json" id="config">: the headers editor's initial content (by auth
// mode) and the default query. Queries and mutations go to POST /graphql, subscriptions to the
// WebSocket on the same URL (graphql-transport-ws), whose connection_init payload carries the
// headers of the headers editor.
import { createElement } from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
// Monaco's workers (editor, JSON, GraphQL), bundled by Vite and loaded from this origin.
import 'graphiql/setup-workers/vite';
import './page.css';

const config = JSON.parse(document.getElementById('config').textContent);
const endpoint = new URL('/graphql', window.location.href);
const wsEndpoint = new URL(endpoint);
wsEndpoint.protocol = endpoint.protocol === 'https:' ? 'wss:' : 'ws:';

const fetcher = createGraphiQLFetcher({
  url: endpoint.toString(),
  subscriptionUrl: wsEndpoint.toString(),
  // The toolkit adds the headers editor's values to these for each subscription.
  wsConnectionParams: config.headers,
});

createRoot(document.getElementById('graphiql')).render(
  createElement(GraphiQL, {
    fetcher,
    defaultHeaders: JSON.stringify(config.headers, null, 2),
    defaultQuery: config.query,
    defaultEditorToolsVisibility: true,
  }),
);
