// Types of poll-sse.js, the browser client of caddy-poll-sse.

/** A JSON value as JSON.parse returns it. */
export type JSONValue = null | boolean | number | string | JSONValue[] | { [member: string]: JSONValue };

/** One RFC 6902 operation. */
export type JSONPatchOperation =
  | { op: 'add' | 'replace' | 'test'; path: string; value: JSONValue }
  | { op: 'remove'; path: string }
  | { op: 'move' | 'copy'; from: string; path: string };

/** An RFC 6902 JSON Patch (`json_patch`). */
export type JSONPatch = JSONPatchOperation[];

/** An RFC 7386 merge patch (`merge_patch`): a patch event holds an object. */
export type MergePatch = { [member: string]: JSONValue };

/** The change formats a stream may be asked for with `?format=`. */
export type Format = 'json_patch' | 'merge_patch' | 'snapshot';

/** The upstream's health as the server last reported it. */
export type UpstreamStatus =
  | { ok: true }
  | {
      ok: false;
      /** the upstream's HTTP status, when it answered */
      status?: number;
      error: string;
      /** RFC 3339 time of the first failure */
      since: string;
    };

export interface Status {
  /** connecting: opening or reconnecting; open: receiving; closed: refused (a retry is
   * scheduled) or close() was called; unauthorized: a transport that sends headers was
   * answered 401 or 403, or the stream was refused after the upstream answered 401 or 403
   * to this client's credentials (see `forward`): no retry is scheduled until the page
   * opens a new stream, e.g. with other headers or after signing in again; refused: a
   * poll_sse_mux did not serve this stream, and it is not retried */
  connection: 'connecting' | 'open' | 'closed' | 'unauthorized' | 'refused';
  upstream: UpstreamStatus;
}

export interface ChangeInfo {
  type: 'snapshot' | 'patch';
  /** the event id: the version of the document */
  id: string;
}

export interface Options {
  /** always sent as the `format` query parameter: this option, else the url's own
   * `format` parameter, else json_patch. A patch event not of that format (an array in
   * json_patch, an object in merge_patch, none in snapshot) is refused, and the client
   * reconnects without a last id to get a snapshot. */
  format?: Format;
  /** passed to EventSource: send cookies and HTTP authentication cross-origin */
  withCredentials?: boolean;
  /** the EventSource constructor to use: a polyfill, a fake in tests, or a transport of
   * an optional part (FetchEventSource, AutoEventSource, SharedEventSource). It is
   * called with the absolute URL, these options and the live document. */
  EventSource?: Transport;
}

/** What the client needs of an EventSource: its events `open`, `error`, `snapshot`,
 * `patch` and `upstream`, with `data` and `lastEventId`, and its readyState. An `error`
 * event at readyState 2 may carry `connection`, a state the client then reports instead
 * of retrying, such as `unauthorized`. */
export type Transport = new (url: string, options: Options, live: LiveDocument<any>) => {
  readonly readyState: number;
  addEventListener(type: string, fn: (e: { data?: string; lastEventId?: string; connection?: string }) => void): void;
  close(): void;
};

export type ChangeListener<T> = (document: T, patch: JSONPatch | MergePatch | null, info: ChangeInfo) => void;
export type StatusListener = (status: Status) => void;

export interface LiveDocument<T = JSONValue> {
  /** the last good document; undefined until the first snapshot. Treat it as read-only:
   * each change makes a new document that shares unchanged parts with the last. */
  readonly document: T | undefined;
  /** the id of the event that produced `document`; null until the first snapshot */
  readonly version: string | null;
  readonly status: Status;
  /** after each snapshot (patch === null) and each applied patch */
  on(name: 'change', fn: ChangeListener<T>): this;
  /** when the connection or the upstream's health changes */
  on(name: 'status', fn: StatusListener): this;
  off(name: 'change', fn: ChangeListener<T>): this;
  off(name: 'status', fn: StatusListener): this;
  /** closes the stream for good */
  close(): void;
}

/** Opens a stream at url and keeps its document up to date. */
export function pollSSE<T = JSONValue>(url: string | URL, options?: Options): LiveDocument<T>;

/** Returns doc with an RFC 6902 patch applied; throws when it does not apply. doc is not
 * modified. */
export function applyPatch(doc: JSONValue, patch: JSONPatch): JSONValue;

/** Returns target with an RFC 7386 merge patch applied. target is not modified. */
export function mergePatch(target: JSONValue | undefined, patch: JSONValue): JSONValue;
