// Types of poll-sse-fetch.js: the event stream read with fetch, so headers can be sent.
import type { JSONValue, LiveDocument, Options, Transport } from './poll-sse.js';

export interface FetchOptions extends Options {
  /** sent with every request, such as Authorization; never put in the URL */
  headers?: HeadersInit;
}

/** An EventSource read with fetch and a streaming parser. It sends options.headers, and
 * the version held in Last-Event-ID. A stream that ends is closed, and the client
 * reconnects with its backoff, resuming; the server's `retry:` is not used. A 401 or 403
 * ends it with connection `unauthorized`, which is not retried. */
export const FetchEventSource: Transport;

/** pollSSE of poll-sse.js, reading the stream with FetchEventSource unless
 * options.EventSource names another. */
export function pollSSE<T = JSONValue>(url: string | URL, options?: FetchOptions): LiveDocument<T>;
