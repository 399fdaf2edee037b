// Reads GET /api/{mode}/stream/{user_id} (multipart/x-mixed-replace) part by part.
//
// Reading the stream with fetch rather than pointing an <img> at it gives the page every JPEG as
// it arrives: each result is counted exactly (two identical results in a row still count twice,
// which an <img> cannot tell), latency is measured per part, a snapshot saves the bytes the
// server sent, and the end of the stream is noticed at once. The page still shows the frames in
// an <img>, through a blob: URL per part.

const CRLF2 = new Uint8Array([13, 10, 13, 10]);
const decoder = new TextDecoder();

export class MjpegReader {
  /**
   * url: a string, or a function giving it at each start (the session key changes on reconnect).
   * onFrame(blob, receivedAt) for every part; onEnd({status?, error?}) once, when the stream
   * ends for any reason other than stop().
   */
  constructor(url, { onFrame, onEnd }) {
    this.url = url;
    this.onFrame = onFrame;
    this.onEnd = onEnd;
    this.controller = null;
  }

  start() {
    this.stop();
    const controller = new AbortController();
    this.controller = controller;
    this.read(controller).catch((error) => {
      if (controller.signal.aborted) return;
      this.controller = null;
      this.onEnd({ error });
    });
  }

  stop() {
    if (this.controller) this.controller.abort();
    this.controller = null;
  }

  async read(controller) {
    const url = typeof this.url === "function" ? this.url() : this.url;
    const response = await fetch(url, { signal: controller.signal, cache: "no-store" });
    if (!response.ok || !response.body) {
      this.controller = null;
      this.onEnd({ status: response.status });
      return;
    }
    const boundary = boundaryOf(response.headers.get("content-type"));
    const parser = new MultipartParser(boundary, (bytes) => {
      this.onFrame(new Blob([bytes], { type: "image/jpeg" }), performance.now());
    });
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parser.push(value);
    }
    if (!controller.signal.aborted) {
      this.controller = null;
      this.onEnd({ status: response.status });
    }
  }
}

function boundaryOf(contentType) {
  const match = /boundary="?([^";]+)"?/i.exec(contentType || "");
  return match ? match[1] : "frame";
}

/**
 * Splits a multipart body into parts. Uses each part's Content-Length where given (the service
 * always sends it) and falls back to searching for the next boundary.
 */
export class MultipartParser {
  constructor(boundary, onPart) {
    this.delimiter = new TextEncoder().encode(`--${boundary}`);
    this.onPart = onPart;
    this.buffer = new Uint8Array(0);
  }

  push(chunk) {
    const merged = new Uint8Array(this.buffer.length + chunk.length);
    merged.set(this.buffer);
    merged.set(chunk, this.buffer.length);
    this.buffer = merged;
    let consumed = 0;
    for (;;) {
      const used = this.nextPart(consumed);
      if (used === 0) break;
      consumed = used;
    }
    if (consumed > 0) this.buffer = this.buffer.slice(consumed);
  }

  /** Parse one part starting at `from`; return the offset after it, or 0 if it is incomplete. */
  nextPart(from) {
    const buf = this.buffer;
    const start = indexOf(buf, this.delimiter, from);
    if (start < 0) return 0;
    const headerEnd = indexOf(buf, CRLF2, start + this.delimiter.length);
    if (headerEnd < 0) return 0;
    const headers = decoder.decode(buf.subarray(start + this.delimiter.length, headerEnd));
    const bodyStart = headerEnd + CRLF2.length;
    const length = /content-length:\s*(\d+)/i.exec(headers);
    let bodyEnd;
    if (length) {
      bodyEnd = bodyStart + Number(length[1]);
      if (bodyEnd > buf.length) return 0;
    } else {
      bodyEnd = indexOf(buf, this.delimiter, bodyStart);
      if (bodyEnd < 0) return 0;
      if (buf[bodyEnd - 1] === 10) bodyEnd -= buf[bodyEnd - 2] === 13 ? 2 : 1;
    }
    this.onPart(buf.slice(bodyStart, bodyEnd));
    return bodyEnd;
  }
}

function indexOf(haystack, needle, from) {
  const first = needle[0];
  const last = haystack.length - needle.length;
  outer: for (let i = from; i <= last; i++) {
    if (haystack[i] !== first) continue;
    for (let j = 1; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) continue outer;
    }
    return i;
  }
  return -1;
}
