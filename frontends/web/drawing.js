// The drawing as a list of operations (strokes, clears, background pictures), so that undo and
// redo replay it exactly instead of keeping a full bitmap per step.
//
// `version` grows with every change to what the canvas shows (a stroke growing, undo, redo,
// clear, a new background); the page sends a drawing only when its version moved on.
// Emits "change" (CustomEvent, detail {version, kind}); kind is "stroke" while a stroke is under
// way and "stroke-end", "undo", "redo", "clear" or "background" otherwise.

const MOUSE_PRESSURE = 0.5;

export class Drawing extends EventTarget {
  constructor(canvas, background = "#ffffff") {
    super();
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { willReadFrequently: false });
    this.background = background;
    this.ops = [];
    this.undone = [];
    this.active = null;
    this.version = 0;
    this.render();
  }

  get canUndo() {
    return this.ops.length > 0 && !this.active;
  }

  get canRedo() {
    return this.undone.length > 0 && !this.active;
  }

  /** Whether the canvas shows nothing but the background colour. */
  get blank() {
    const last = this.ops.length ? this.ops[this.ops.length - 1] : null;
    return !last || last.type === "clear";
  }

  /** tool: "brush" or "eraser" (which paints the background colour). */
  beginStroke(tool, color, size, point) {
    if (this.active) this.endStroke();
    const stroke = { type: "stroke", color: tool === "eraser" ? this.background : color, size, points: [point] };
    this.active = stroke;
    this.ops.push(stroke);
    this.undone = [];
    drawDot(this.ctx, stroke, point);
    this.changed("stroke");
  }

  extendStroke(points) {
    const stroke = this.active;
    if (!stroke || !points.length) return;
    for (const point of points) {
      const last = stroke.points[stroke.points.length - 1];
      if (Math.abs(point.x - last.x) < 0.3 && Math.abs(point.y - last.y) < 0.3) continue;
      stroke.points.push(point);
      drawSegment(this.ctx, stroke, last, point);
    }
    this.changed("stroke");
  }

  endStroke() {
    if (!this.active) return;
    this.active = null;
    this.changed("stroke-end");
  }

  undo() {
    if (!this.canUndo) return;
    this.undone.push(this.ops.pop());
    this.render();
    this.changed("undo");
  }

  redo() {
    if (!this.canRedo) return;
    this.ops.push(this.undone.pop());
    this.render();
    this.changed("redo");
  }

  clear() {
    if (this.active || this.blank) return;
    this.ops.push({ type: "clear" });
    this.undone = [];
    this.render();
    this.changed("clear");
  }

  /** A picture (ImageBitmap or image element) under everything drawn from now on, centre-cropped. */
  setBackground(image) {
    if (this.active) this.endStroke();
    this.ops.push({ type: "image", image });
    this.undone = [];
    this.render();
    this.changed("background");
  }

  /** Redraw from the last clear or background picture. */
  render() {
    const { ctx, canvas } = this;
    let start = 0;
    for (let i = this.ops.length - 1; i >= 0; i--) {
      if (this.ops[i].type !== "stroke") {
        start = i;
        break;
      }
    }
    ctx.save();
    ctx.globalCompositeOperation = "source-over";
    ctx.fillStyle = this.background;
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.restore();
    for (const op of this.ops.slice(start)) {
      if (op.type === "image") drawCover(ctx, op.image, canvas.width, canvas.height);
      else if (op.type === "stroke") drawStroke(ctx, op);
    }
  }

  changed(kind) {
    this.version += 1;
    this.dispatchEvent(new CustomEvent("change", { detail: { version: this.version, kind } }));
  }
}

/** A point in canvas pixels with the pen's pressure (0..1); mice and plain touches get 0.5. */
export function pointFromEvent(event, canvas) {
  const rect = canvas.getBoundingClientRect();
  const x = ((event.clientX - rect.left) * canvas.width) / rect.width;
  const y = ((event.clientY - rect.top) * canvas.height) / rect.height;
  let p = event.pressure;
  if (event.pointerType !== "pen" && (p === 0 || p === 1 || p === 0.5 || !Number.isFinite(p))) p = MOUSE_PRESSURE;
  return { x, y, p };
}

/** Line width for a pressure: the chosen size at a mouse's 0.5, thinner or thicker with a pen. */
function widthAt(size, pressure) {
  return Math.max(0.5, size * (0.3 + 1.4 * pressure));
}

function drawDot(ctx, stroke, point) {
  ctx.beginPath();
  ctx.fillStyle = stroke.color;
  ctx.arc(point.x, point.y, widthAt(stroke.size, point.p) / 2, 0, Math.PI * 2);
  ctx.fill();
}

function drawSegment(ctx, stroke, from, to) {
  ctx.beginPath();
  ctx.strokeStyle = stroke.color;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.lineWidth = widthAt(stroke.size, (from.p + to.p) / 2);
  ctx.moveTo(from.x, from.y);
  ctx.lineTo(to.x, to.y);
  ctx.stroke();
}

function drawStroke(ctx, stroke) {
  const [first, ...rest] = stroke.points;
  drawDot(ctx, stroke, first);
  let last = first;
  for (const point of rest) {
    drawSegment(ctx, stroke, last, point);
    last = point;
  }
}

function drawCover(ctx, image, width, height) {
  const iw = image.width;
  const ih = image.height;
  const scale = Math.max(width / iw, height / ih);
  const w = iw * scale;
  const h = ih * scale;
  ctx.drawImage(image, (width - w) / 2, (height - h) / 2, w, h);
}
