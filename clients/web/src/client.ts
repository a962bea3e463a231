import { Client, fetchExchange, subscriptionExchange, type Exchange } from '@urql/core';
import { persistedExchange } from '@urql/exchange-persisted';
import type { DocumentNode } from 'graphql';
import { createClient as createWsClient, type Client as WsClient } from 'graphql-ws';
import type { Settings } from './config';

export type WsState = 'connecting' | 'connected' | 'closed';

/**
 * One urql client: queries and mutations over HTTP (POST, dev-auth headers),
 * subscriptions over graphql-ws on the same endpoint (credentials in `connection_init`).
 *
 * No cache exchange: this app always wants the server's exact, live values (balance, stock),
 * so every query goes to the network.
 *
 * With `trustedDocuments`, every operation (subscriptions too) is sent by the hash codegen gave
 * its document (`__meta__.hash`, listed in src/gql/persisted-documents.json), never by its text.
 */
export function makeClient(
  settings: Settings,
  onWsState: (state: WsState, detail?: string) => void,
): { client: Client; ws: WsClient } {
  const ws = createWsClient({
    url: settings.wsUrl,
    // The server reads these as strings only: a number here would be ignored.
    connectionParams: { 'x-user-id': settings.userId },
    // Reconnect after a server restart or a dropped network, but not when the server refused
    // the credentials (4403): a retry would only be refused again.
    retryAttempts: Infinity,
    shouldRetry: (event) => (event as CloseEvent | undefined)?.code !== 4403,
    on: {
      connecting: () => onWsState('connecting'),
      connected: () => onWsState('connected'),
      closed: (event) => {
        const close = event as CloseEvent;
        onWsState('closed', close?.code ? `${close.code} ${close.reason}`.trim() : undefined);
      },
    },
  });

  const client = new Client({
    url: settings.httpUrl,
    preferGetMethod: false,
    requestPolicy: 'network-only',
    fetchOptions: () => ({ headers: { 'x-user-id': settings.userId } }),
    exchanges: [
      ...(settings.trustedDocuments ? [byHashOnly()] : []),
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query || '' };
          return {
            subscribe(sink) {
              const unsubscribe = ws.subscribe(input, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
  });

  return { client, ws };
}

/** Sends each operation as Apollo's persisted query extension with codegen's hash, no text. */
function byHashOnly(): Exchange {
  return persistedExchange({
    enforcePersistedQueries: true,
    enableForMutation: true,
    enableForSubscriptions: true,
    preferGetForPersistedQueries: false,
    generateHash: async (_text: string, document: DocumentNode) => {
      const hash = (document as DocumentNode & { __meta__?: { hash?: string } }).__meta__?.hash;
      if (!hash) throw new Error('a document without a codegen hash: run npm run codegen');
      return hash;
    },
  });
}
