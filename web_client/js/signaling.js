// JSON request/response and events over one WebSocket (docs/protocol.md, "WebSocket").

const REQUEST_TIMEOUT_MS = 15000;
const CONNECT_TIMEOUT_MS = 10000;

export class SignalingError extends Error {
  constructor(code, message, method = null, data = undefined) {
    super(message || code);
    this.name = 'SignalingError';
    this.code = code;
    this.method = method;
    this.data = data; // details some errors carry, e.g. the current notes of a `conflict`
  }
}

export function wsUrl(token) {
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return `${scheme}://${location.host}/ws?token=${encodeURIComponent(token)}`;
}

export class Signaling {
  /** Resolves with a Signaling once the socket is open. */
  static async connect(url, timeoutMs = CONNECT_TIMEOUT_MS) {
    return new Signaling(await openSocket(url, timeoutMs));
  }

  constructor(ws) {
    this.nextId = 1;
    this.pending = new Map(); // id -> {resolve, reject, timer, method}
    this.handlers = new Map(); // event name -> Set of handlers
    this._use(ws);
  }

  _use(ws) {
    this.ws = ws;
    this.closed = false;
    this.closedByUs = false;
    this.serverError = null; // the `error` event the server sends before closing
    ws.onmessage = (e) => this._onMessage(e.data);
    ws.onclose = (e) => this._onClose(e);
    ws.onerror = null; // a close event always follows; it carries the useful details
  }

  /**
   * Go on over a new socket to `url`, keeping every handler: the old socket may be dead
   * without knowing it (its address went away in a network change). Requests still waiting
   * on the old one fail with `closed`; no `close` event is emitted for it.
   */
  async reopen(url, timeoutMs = CONNECT_TIMEOUT_MS) {
    const old = this.ws;
    old.onmessage = old.onclose = null;
    old.close(1000);
    this._failPending(new SignalingError('closed', 'The connection was replaced.'));
    const ws = await openSocket(url, timeoutMs);
    // Set synchronously after onopen, so no message can arrive before our handlers exist.
    this._use(ws);
  }

  /** Resolves with `result`, rejects with a SignalingError carrying the server's `code`. */
  request(method, params, timeoutMs = REQUEST_TIMEOUT_MS) {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) {
      return Promise.reject(new SignalingError('closed', 'Not connected to the server.', method));
    }
    const id = this.nextId++;
    const msg = params === undefined ? { id, method } : { id, method, params };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new SignalingError('timeout', `No answer to "${method}".`, method));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer, method });
      this.ws.send(JSON.stringify(msg));
    });
  }

  /**
   * Subscribe to a server event (participantJoined, chat, ...) or to the local `close`
   * event ({code, reason, error, byClient}). Returns an unsubscribe function.
   */
  on(event, handler) {
    if (!this.handlers.has(event)) this.handlers.set(event, new Set());
    this.handlers.get(event).add(handler);
    return () => this.handlers.get(event)?.delete(handler);
  }

  close() {
    if (this.closed) return;
    this.closedByUs = true;
    this.ws.close(1000);
  }

  _emit(event, data) {
    for (const handler of this.handlers.get(event) ?? []) {
      // One faulty handler must not keep the others from seeing the event.
      try { handler(data); } catch (err) { console.error(`handler for ${event}`, err); }
    }
  }

  _onMessage(raw) {
    let msg;
    try { msg = JSON.parse(raw); } catch { console.error('non-JSON message', raw); return; }
    if (msg.event) {
      if (msg.event === 'error') this.serverError = msg.data;
      this._emit(msg.event, msg.data);
      return;
    }
    const waiter = this.pending.get(msg.id);
    if (!waiter) return; // answer to a request that already timed out
    this.pending.delete(msg.id);
    clearTimeout(waiter.timer);
    if (msg.error) {
      const { code, message, data } = msg.error;
      waiter.reject(new SignalingError(code, message, waiter.method, data));
    } else {
      waiter.resolve(msg.result ?? {});
    }
  }

  _onClose(e) {
    this.closed = true;
    // A refused token closes with 4401 and the error code as reason, after an `error` event;
    // a host removing us closes with 4403.
    const code = e.code === 4403 ? 'removed' : e.reason || this.serverError?.code || 'closed';
    const message = this.serverError?.message || e.reason ||
      `The connection to the server closed (code ${e.code}).`;
    const error = new SignalingError(code, message);
    error.closeCode = e.code;
    this._failPending(error);
    this._emit('close', { code: e.code, reason: e.reason, error, byClient: this.closedByUs });
  }

  _failPending(error) {
    for (const { reject, timer, method } of this.pending.values()) {
      clearTimeout(timer);
      reject(new SignalingError(error.code, error.message, method));
    }
    this.pending.clear();
  }
}

/** Resolves with a WebSocket once it is open. */
function openSocket(url, timeoutMs) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const timer = setTimeout(() => {
      ws.close();
      reject(new SignalingError('timeout', 'The signalling server did not answer.'));
    }, timeoutMs);
    ws.onopen = () => {
      clearTimeout(timer);
      resolve(ws);
    };
    ws.onclose = (e) => {
      clearTimeout(timer);
      reject(new SignalingError(e.reason || 'unreachable',
        e.reason || `Could not reach the signalling server (WebSocket code ${e.code}).`));
    };
  });
}
