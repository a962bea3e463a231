// Run-time settings, read from the page URL so one build works against any server:
//   ?server=http://127.0.0.1:8000   the server (its /graphql is used), or a full GraphQL URL;
//                                   default: this page's own origin, /graphql
//   ?user=1                         the dev-auth user id (sent as x-user-id); default 1
//   ?documents=trusted              send every document by its hash only (a server with
//                                   TRUSTED_DOCUMENTS = src/gql/persisted-documents.json);
//                                   default: send the text

export interface Settings {
  /** GraphQL over HTTP endpoint. */
  httpUrl: string;
  /** The same endpoint for graphql-ws (ws:// or wss://). */
  wsUrl: string;
  /** Sent as `x-user-id` on HTTP and in the WebSocket `connection_init` payload. */
  userId: string;
  /** Send documents by hash only, as a server running only trusted documents wants. */
  trustedDocuments: boolean;
}

export function readSettings(location: Location = window.location): Settings {
  const params = new URLSearchParams(location.search);
  const server = params.get('server')?.trim();
  const http = new URL(server || '/graphql', location.href);
  if (http.pathname === '/' || http.pathname === '') http.pathname = '/graphql';
  if (http.protocol !== 'http:' && http.protocol !== 'https:') {
    throw new Error(`?server= must be an http(s) URL, got ${JSON.stringify(server)}`);
  }
  const ws = new URL(http.href);
  ws.protocol = http.protocol === 'https:' ? 'wss:' : 'ws:';
  const userId = params.get('user')?.trim() || '1';
  if (!/^[1-9][0-9]*$/.test(userId)) {
    throw new Error(`?user= must be a positive integer user id, got ${JSON.stringify(userId)}`);
  }
  const documents = params.get('documents');
  if (documents !== null && documents !== 'trusted') {
    throw new Error(`?documents= may only be trusted, got ${JSON.stringify(documents)}`);
  }
  return { httpUrl: http.href, wsUrl: ws.href, userId, trustedDocuments: documents === 'trusted' };
}
