// FakeEventSource stands in for the browser's EventSource in the unit tests of
// web/poll-sse.js. The test drives it: open, deliver events, fail. Like the native one,
// it remembers the last event id it delivered and sends it when it reconnects on its own.
export class FakeEventSource {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 2;
  static instances = [];

  constructor(url, options = {}) {
    this.url = url;
    this.withCredentials = !!options.withCredentials;
    this.readyState = FakeEventSource.CONNECTING;
    this.lastEventId = '';
    this.listeners = new Map();
    this.requests = [{ url, lastEventId: null }]; // what each connection attempt sent
    FakeEventSource.instances.push(this);
  }

  static reset() {
    FakeEventSource.instances = [];
  }

  static get last() {
    return FakeEventSource.instances.at(-1);
  }

  addEventListener(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(fn);
  }

  close() {
    this.readyState = FakeEventSource.CLOSED;
  }

  dispatch(type, event) {
    for (const fn of this.listeners.get(type) ?? []) fn(event);
  }

  open() {
    this.readyState = FakeEventSource.OPEN;
    this.dispatch('open', { type: 'open' });
  }

  // send delivers one event; a JSON value is sent as its text. An id (even '') sets
  // lastEventId as the event-stream parser does; upstream events carry none.
  send(type, data, id) {
    if (this.readyState === FakeEventSource.CLOSED) throw new Error('send on a closed EventSource');
    if (id !== undefined) this.lastEventId = id;
    const text = typeof data === 'string' ? data : JSON.stringify(data);
    this.dispatch(type, { type, data: text, lastEventId: this.lastEventId });
  }

  // drop ends the connection as a network error does: the native EventSource fires
  // error and reconnects by itself, sending Last-Event-ID.
  drop() {
    this.readyState = FakeEventSource.CONNECTING;
    this.dispatch('error', { type: 'error' });
    this.requests.push({ url: this.url, lastEventId: this.lastEventId || null });
  }

  // fail ends it for good, as a non-200 answer does.
  fail() {
    this.readyState = FakeEventSource.CLOSED;
    this.dispatch('error', { type: 'error' });
  }
}
