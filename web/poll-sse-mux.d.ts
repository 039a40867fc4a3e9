// Types of poll-sse-mux.js: several poll_sse routes on one poll_sse_mux stream.
import type { JSONValue, LiveDocument, Options } from './poll-sse.js';

/** Opens url (a poll_sse_mux route) asking for the streams named, over one connection,
 * and returns the live document of each. Each works as pollSSE's, and reports connection
 * `refused`, without retrying, when the server refused its stream (unknown name, a full
 * route, too many loops). A reconnect resumes every stream at once, each with a patch,
 * a snapshot or nothing. options.EventSource may name the transport of the connection,
 * such as FetchEventSource. */
export function pollMux<T = JSONValue>(url: string | URL, names: string[], options?: Options): Record<string, LiveDocument<T>>;
