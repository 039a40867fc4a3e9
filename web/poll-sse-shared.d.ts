// Types of poll-sse-shared.js: one stream for all the tabs of an origin.
import type { JSONValue, LiveDocument, Options, Transport } from './poll-sse.js';

export interface SharedOptions extends Options {
  /** true: the tabs of the origin that open this URL share one stream */
  shared?: boolean;
  /** the transport the leading tab reads the stream with; default EventSource */
  Leader?: Transport;
}

/** One tab per origin and URL (a Web Lock) reads the stream and hands its events and,
 * to a tab that joins, its document to the others (a BroadcastChannel). When it closes,
 * the next takes over and resumes from the version it holds: a patch, or nothing. */
export const SharedEventSource: Transport;

/** pollSSE of poll-sse.js, with options.shared sharing one stream among the tabs. */
export function pollSSE<T = JSONValue>(url: string | URL, options?: SharedOptions): LiveDocument<T>;
