// The hint layer: a list of drawing operations (strokes, points, erasures, clears) replayed onto a
// canvas of the sketch's own size. Undo and redo move operations between two stacks, so memory does
// not grow with the sketch's size. After each replay the alpha is made binary: a pixel is a hint
// (opaque, its colour) or not (transparent), which is what `pipe colorize --hints` reads.

export class HintLayer {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { willReadFrequently: true });
    this.ops = [];
    this.undone = [];
    this.current = null;
  }

  reset(width, height) {
    this.canvas.width = width;
    this.canvas.height = height;
    this.ops = [];
    this.undone = [];
    this.current = null;
    this.render();
  }

  get empty() {
    return this.ops.length === 0 || this.ops[this.ops.length - 1].kind === "clear";
  }

  begin(kind, colour, size, point) {
    this.current = { kind, colour, size, points: [point] };
    drawOp(this.ctx, this.current, this.canvas);
  }

  extend(point) {
    if (!this.current) return;
    const pts = this.current.points;
    const last = pts[pts.length - 1];
    pts.push(point);
    drawOp(this.ctx, { ...this.current, points: [last, point] }, this.canvas);
  }

  end() {
    if (!this.current) return null;
    const op = this.current;
    this.current = null;
    this.push(op);
    return op;
  }

  clear() {
    if (!this.empty) this.push({ kind: "clear" });
  }

  push(op) {
    this.ops.push(op);
    this.undone = [];
    this.render();
  }

  undo() {
    if (!this.ops.length) return false;
    this.undone.push(this.ops.pop());
    this.render();
    return true;
  }

  redo() {
    if (!this.undone.length) return false;
    this.ops.push(this.undone.pop());
    this.render();
    return true;
  }

  render() {
    const { ctx, canvas } = this;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    for (const op of this.ops) drawOp(ctx, op, canvas);
    if (!canvas.width || !canvas.height) return;
    const image = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const data = image.data;
    for (let i = 3; i < data.length; i += 4) data[i] = data[i] >= 128 ? 255 : 0;
    ctx.putImageData(image, 0, 0);
  }

  toBlob() {
    return new Promise((resolve) => this.canvas.toBlob(resolve, "image/png"));
  }
}

function drawOp(ctx, op, canvas) {
  if (op.kind === "clear") {
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    return;
  }
  ctx.save();
  ctx.globalCompositeOperation = op.kind === "erase" ? "destination-out" : "source-over";
  ctx.strokeStyle = ctx.fillStyle = op.kind === "erase" ? "#000" : op.colour;
  ctx.lineWidth = op.size;
  ctx.lineCap = ctx.lineJoin = "round";
  const pts = op.points;
  if (pts.length === 1) {
    ctx.beginPath();
    ctx.arc(pts[0].x, pts[0].y, op.size / 2, 0, 2 * Math.PI);
    ctx.fill();
  } else {
    ctx.beginPath();
    ctx.moveTo(pts[0].x, pts[0].y);
    for (const p of pts.slice(1)) ctx.lineTo(p.x, p.y);
    ctx.stroke();
  }
  ctx.restore();
}
