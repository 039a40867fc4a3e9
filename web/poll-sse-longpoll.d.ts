// Types of poll-sse-longpoll.js: the long-poll fallback. It imports poll-sse-fetch.js.
import type { JSONValue, LiveDocument, Transport } from './poll-sse.js';
import type { FetchOptions } from './poll-sse-fetch.js';

export interface FallbackOptions extends FetchOptions {
  /** 'auto': read the stream, and long-poll when it stays silent */
  fallback?: 'auto';
  /** ms without a byte of the stream after which it long-polls; default 5000 */
  fallbackAfter?: number;
  /** ms of long-polling after which it tries the stream again; default 60000 */
  streamAgainAfter?: number;
}

/** Reads the stream with FetchEventSource; when no byte arrives within fallbackAfter, it
 * long-polls (If-None-Match, Prefer: wait=30, the patch media type of the format) until
 * streamAgainAfter has passed, then tries the stream again, resuming. */
export const AutoEventSource: Transport;

/** pollSSE of poll-sse.js, with options.fallback 'auto' reading through
 * AutoEventSource. */
export function pollSSE<T = JSONValue>(url: string | URL, options?: FallbackOptions): LiveDocument<T>;
