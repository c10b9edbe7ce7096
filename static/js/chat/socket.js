// The chat websocket, reconnecting with exponential backoff and jitter.
// Frames are JSON objects with a `type` (chat/protocol.py documents them all).

const PING_EVERY_MS = 25_000; // keeps idle proxies from closing the socket
const MAX_DELAY_MS = 10_000;

export class ChatSocket {
  /**
   * @param {string} path e.g. "/ws/chat/"
   * @param {{onFrame: (frame: object) => void, onOpen: () => void, onStatus: (status: string) => void}} handlers
   */
  constructor(path, handlers) {
    this.url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
    this.handlers = handlers;
    this.attempt = 0;
    this.ws = null;
    this.retryTimer = null;
    this.pingTimer = null;
    this.stopped = false;
    window.addEventListener("online", () => this.reconnectNow());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.reconnectNow();
    });
  }

  get isOpen() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.handlers.onStatus(this.attempt === 0 ? "connecting" : "reconnecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.attempt = 0;
      this.handlers.onStatus("open");
      this.pingTimer = setInterval(() => this.send({ type: "ping" }), PING_EVERY_MS);
      this.handlers.onOpen();
    });
    ws.addEventListener("message", (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame && typeof frame.type === "string") this.handlers.onFrame(frame);
    });
    ws.addEventListener("close", (event) => {
      clearInterval(this.pingTimer);
      if (this.ws !== ws) return;
      this.ws = null;
      if (event.code === 4401) {
        // No session any more: reconnecting cannot help.
        this.stopped = true;
        this.handlers.onStatus("signed-out");
        return;
      }
      this.scheduleReconnect();
    });
  }

  scheduleReconnect() {
    if (this.stopped || this.retryTimer) return;
    const step = Math.min(MAX_DELAY_MS, 500 * 2 ** this.attempt);
    const delay = step / 2 + Math.random() * (step / 2);
    this.attempt += 1;
    this.handlers.onStatus("reconnecting");
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  reconnectNow() {
    if (!this.stopped && this.ws === null) this.connect();
  }

  /** Sends a frame; false when the socket is not open (the caller keeps what it wanted to send). */
  send(frame) {
    if (!this.isOpen) return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }
}
