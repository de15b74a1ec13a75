// A tiny live line chart on a <canvas>: the last N samples, auto-scaled,
// with the latest value written in the corner. No dependencies.

export class Sparkline {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{label: string, unit: string, color?: string, capacity?: number, minMax?: number, digits?: number}} options
   */
  constructor(canvas, options) {
    this.canvas = canvas;
    this.label = options.label;
    this.unit = options.unit;
    this.color = options.color ?? '#2b7de9';
    this.capacity = options.capacity ?? 60;
    this.minMax = options.minMax ?? 1;
    this.digits = options.digits ?? 1;
    /** @type {(number | null)[]} */
    this.values = [];
    canvas.setAttribute('role', 'img');
    this.#describe(null);
  }

  /** @param {number | null} value */
  push(value) {
    this.values.push(value);
    if (this.values.length > this.capacity) this.values.shift();
    this.#describe(value);
    this.draw();
  }

  draw() {
    const canvas = this.canvas;
    const ratio = globalThis.devicePixelRatio || 1;
    const width = canvas.clientWidth || 160;
    const height = canvas.clientHeight || 48;
    if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
    if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
    const ctx = canvas.getContext('2d');
    if (!ctx) return;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const numbers = /** @type {number[]} */ (this.values.filter((v) => v !== null && Number.isFinite(v)));
    const max = Math.max(this.minMax, ...numbers) * 1.15;
    ctx.strokeStyle = '#d0d7de';
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(0, height - 0.5);
    ctx.lineTo(width, height - 0.5);
    ctx.stroke();
    ctx.strokeStyle = this.color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let pen = false;
    // Fill from the left while young, scroll once there are `capacity` samples.
    const slots = Math.min(this.capacity, Math.max(20, this.values.length));
    const step = width / Math.max(1, slots - 1);
    const offset = 0;
    this.values.forEach((value, i) => {
      if (value === null || !Number.isFinite(value)) {
        pen = false;
        return;
      }
      const x = (offset + i) * step;
      const y = height - 2 - (value / max) * (height - 14);
      if (pen) ctx.lineTo(x, y);
      else ctx.moveTo(x, y);
      pen = true;
    });
    ctx.stroke();
    const last = this.values.at(-1);
    ctx.fillStyle = '#57606a';
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillText(`${this.label} ${formatValue(last ?? null, this.digits)} ${this.unit}`, 4, 11);
  }

  /** @param {number | null} value */
  #describe(value) {
    this.canvas.setAttribute('aria-label', `${this.label}: ${formatValue(value, this.digits)} ${this.unit}`);
  }
}

/**
 * @param {number | null} value
 * @param {number} digits
 */
export function formatValue(value, digits = 1) {
  return value === null || !Number.isFinite(value) ? '–' : value.toFixed(digits);
}
