// The mask editor: a canvas at the image's own resolution over the image. Painted pixels are the edit region;
// the export is the API's alpha convention (alpha 0 = edit). Zoom and pan are a CSS transform of the stage,
// so pointer positions are mapped through the canvas's on-screen box.

import { h, field, id } from './dom.js';

const TINT = '#ff2d6f';
const HISTORY = 40;

export class MaskEditor {
  constructor({ onChange }) {
    this.onChange = onChange || (() => {});
    this.undoStack = [];
    this.redoStack = [];
    this.tool = 'brush';
    this.size = 40;
    this.zoom = 1;
    this.pan = { x: 0, y: 0 };
    this.painted = false;
    this.image = h('img', { class: 'stage-img', alt: 'Source image' });
    this.canvas = h('canvas', { class: 'stage-mask', 'aria-label': 'Mask: paint the region to edit',
      role: 'img' });
    this.frame = h('div', { class: 'stage-frame', hidden: true });
    this.cursor = h('div', { class: 'stage-cursor', hidden: true });
    this.inner = h('div', { class: 'stage-inner' }, this.image, this.canvas, this.frame);
    this.stage = h('div', { class: 'stage', tabindex: '0', 'aria-label': 'Image and mask. Keys: B brush, E eraser, '
      + '[ and ] brush size, Ctrl+Z undo, Ctrl+Shift+Z redo, + and - zoom, arrows pan, 0 reset view.' },
    this.inner, this.cursor);
    this.coverage = h('output', { class: 'coverage', 'aria-live': 'polite' }, 'coverage 0.0 %');
    this.toolbar = this._toolbar();
    this.el = h('div', { class: 'mask-editor', hidden: true }, this.toolbar, this.stage,
      h('p', { class: 'hint' }, 'Paint where the image may change. ', this.coverage));
    this._bind();
  }

  _toolbar() {
    const name = id('tool');
    const radio = (value, label, key) => {
      const input = h('input', { type: 'radio', name, value, checked: value === this.tool });
      input.addEventListener('change', () => { this.tool = value; });
      return h('label', { class: 'seg', title: `${label} (${key})` }, input, ' ', label);
    };
    this.sizeInput = h('input', { type: 'range', min: '2', max: '300', value: String(this.size), name: 'brush_size' });
    this.sizeInput.addEventListener('input', () => { this.size = Number(this.sizeInput.value); });
    this.opacityInput = h('input', { type: 'range', min: '0', max: '100', value: '55', name: 'overlay_opacity' });
    this.opacityInput.addEventListener('input', () => this._style());
    this.featherInput = h('input', { type: 'range', min: '0', max: '40', value: '0', name: 'feather' });
    this.featherInput.addEventListener('input', () => this._style());
    const button = (label, fn, title) => {
      const b = h('button', { type: 'button', title: title || label }, label);
      b.addEventListener('click', fn);
      return b;
    };
    this.undoButton = button('Undo', () => this.undo(), 'Undo (Ctrl+Z)');
    this.redoButton = button('Redo', () => this.redo(), 'Redo (Ctrl+Shift+Z)');
    const tools = h('fieldset', { class: 'tools' }, h('legend', {}, 'Mask tool'),
      radio('brush', 'Brush', 'B'), radio('eraser', 'Eraser', 'E'), radio('pan', 'Pan', 'drag'));
    return h('div', { class: 'toolbar', role: 'group', 'aria-label': 'Mask editor' },
      tools,
      field('Brush size', this.sizeInput, { name: 'brush_size' }),
      field('Overlay opacity', this.opacityInput, { name: 'overlay_opacity' }),
      field('Feather preview (px)', this.featherInput, { name: 'feather' }),
      h('div', { class: 'buttons' }, this.undoButton, this.redoButton,
        button('Invert', () => this.invert()), button('Clear', () => this.clearMask()),
        button('Zoom in', () => this.zoomBy(1.25), 'Zoom in (+)'), button('Zoom out', () => this.zoomBy(0.8), 'Zoom out (-)'),
        button('Fit', () => this.resetView(), 'Reset view (0)')));
  }

  /** Show a new source: the mask starts empty at the image's own size. */
  async load(src) {
    this.image.src = src;
    await this.image.decode();
    this.canvas.width = this.image.naturalWidth;
    this.canvas.height = this.image.naturalHeight;
    this.ctx = this.canvas.getContext('2d', { willReadFrequently: true });
    this.undoStack = [];
    this.redoStack = [];
    this.size = Math.max(4, Math.round(Math.max(this.canvas.width, this.canvas.height) / 25));
    this.sizeInput.max = String(Math.max(300, Math.round(this.canvas.width / 2)));
    this.sizeInput.value = String(this.size);
    this.el.hidden = false;
    this.resetView();
    this._changed();
  }

  get width() { return this.canvas.width; }
  get height() { return this.canvas.height; }

  _style() {
    this.canvas.style.opacity = String(Number(this.opacityInput.value) / 100);
    const f = Number(this.featherInput.value);
    this.canvas.style.filter = f ? `blur(${f * this._displayScale()}px)` : '';
    this.inner.style.transform = `translate(${this.pan.x}px, ${this.pan.y}px) scale(${this.zoom})`;
  }

  _displayScale() {
    const r = this.canvas.getBoundingClientRect();
    return r.width ? r.width / this.zoom / this.canvas.width : 1;
  }

  zoomBy(f) {
    this.zoom = Math.min(16, Math.max(0.25, this.zoom * f));
    this._style();
  }

  resetView() {
    this.zoom = 1;
    this.pan = { x: 0, y: 0 };
    this._style();
  }

  _point(ev) {
    const r = this.canvas.getBoundingClientRect();
    return { x: ((ev.clientX - r.left) / r.width) * this.canvas.width, y: ((ev.clientY - r.top) / r.height) * this.canvas.height,
      scale: r.width / this.canvas.width };
  }

  _snapshot() {
    this.undoStack.push(this.ctx.getImageData(0, 0, this.width, this.height));
    if (this.undoStack.length > HISTORY) this.undoStack.shift();
    this.redoStack = [];
  }

  _bind() {
    let drawing = null;
    this.stage.addEventListener('pointerdown', (ev) => {
      if (!this.ctx || ev.button !== 0) return;
      this.stage.setPointerCapture(ev.pointerId);
      if (this.tool === 'pan') {
        drawing = { pan: true, x: ev.clientX, y: ev.clientY, start: { ...this.pan } };
        return;
      }
      this._snapshot();
      const p = this._point(ev);
      drawing = { last: p };
      this._dab(p, p);
      ev.preventDefault();
    });
    this.stage.addEventListener('pointermove', (ev) => {
      this._moveCursor(ev);
      if (!drawing) return;
      if (drawing.pan) {
        this.pan = { x: drawing.start.x + ev.clientX - drawing.x, y: drawing.start.y + ev.clientY - drawing.y };
        this._style();
        return;
      }
      const p = this._point(ev);
      this._dab(drawing.last, p);
      drawing.last = p;
    });
    const end = () => {
      if (drawing && !drawing.pan) this._changed();
      drawing = null;
    };
    this.stage.addEventListener('pointerup', end);
    this.stage.addEventListener('pointercancel', end);
    this.stage.addEventListener('pointerleave', () => { this.cursor.hidden = true; });
    this.stage.addEventListener('wheel', (ev) => {
      if (!ev.ctrlKey && !ev.metaKey) return;
      ev.preventDefault();
      this.zoomBy(ev.deltaY < 0 ? 1.1 : 0.9);
    }, { passive: false });
    this.stage.addEventListener('keydown', (ev) => this._key(ev));
  }

  _key(ev) {
    const k = ev.key;
    const mod = ev.ctrlKey || ev.metaKey;
    const pick = (tool) => {
      this.tool = tool;
      for (const r of this.toolbar.querySelectorAll('input[type=radio]')) r.checked = r.value === tool;
    };
    if (mod && k.toLowerCase() === 'z') (ev.shiftKey ? this.redo() : this.undo());
    else if (mod && k.toLowerCase() === 'y') this.redo();
    else if (k === 'b') pick('brush');
    else if (k === 'e') pick('eraser');
    else if (k === '[') this._setSize(this.size * 0.8);
    else if (k === ']') this._setSize(this.size * 1.25);
    else if (k === '+' || k === '=') this.zoomBy(1.25);
    else if (k === '-') this.zoomBy(0.8);
    else if (k === '0') this.resetView();
    else if (k.startsWith('Arrow')) {
      const step = 40;
      this.pan.x += k === 'ArrowLeft' ? step : k === 'ArrowRight' ? -step : 0;
      this.pan.y += k === 'ArrowUp' ? step : k === 'ArrowDown' ? -step : 0;
      this._style();
    } else return;
    ev.preventDefault();
  }

  _setSize(v) {
    this.size = Math.round(Math.min(Number(this.sizeInput.max), Math.max(2, v)));
    this.sizeInput.value = String(this.size);
  }

  _moveCursor(ev) {
    if (this.tool === 'pan' || !this.ctx) {
      this.cursor.hidden = true;
      return;
    }
    const stage = this.stage.getBoundingClientRect();
    const d = this.size * this._point(ev).scale;
    this.cursor.hidden = false;
    this.cursor.style.width = `${d}px`;
    this.cursor.style.height = `${d}px`;
    this.cursor.style.left = `${ev.clientX - stage.left - d / 2}px`;
    this.cursor.style.top = `${ev.clientY - stage.top - d / 2}px`;
  }

  _dab(a, b) {
    const c = this.ctx;
    c.save();
    c.globalCompositeOperation = this.tool === 'eraser' ? 'destination-out' : 'source-over';
    c.strokeStyle = TINT;
    c.fillStyle = TINT;
    c.lineWidth = this.size;
    c.lineCap = 'round';
    c.lineJoin = 'round';
    c.beginPath();
    c.moveTo(a.x, a.y);
    c.lineTo(b.x, b.y);
    c.stroke();
    c.beginPath();
    c.arc(b.x, b.y, this.size / 2, 0, Math.PI * 2);
    c.fill();
    c.restore();
    this.painted = true;
  }

  undo() {
    if (!this.undoStack.length) return;
    this.redoStack.push(this.ctx.getImageData(0, 0, this.width, this.height));
    this.ctx.putImageData(this.undoStack.pop(), 0, 0);
    this._changed();
  }

  redo() {
    if (!this.redoStack.length) return;
    this.undoStack.push(this.ctx.getImageData(0, 0, this.width, this.height));
    this.ctx.putImageData(this.redoStack.pop(), 0, 0);
    this._changed();
  }

  invert() {
    if (!this.ctx) return;
    this._snapshot();
    const img = this.ctx.getImageData(0, 0, this.width, this.height);
    const d = img.data;
    for (let i = 0; i < d.length; i += 4) {
      d[i] = 0xff; d[i + 1] = 0x2d; d[i + 2] = 0x6f;
      d[i + 3] = 255 - d[i + 3];
    }
    this.ctx.putImageData(img, 0, 0);
    this._changed();
  }

  clearMask() {
    if (!this.ctx) return;
    this._snapshot();
    this.ctx.clearRect(0, 0, this.width, this.height);
    this._changed();
  }

  /** The share of the image painted (pixels at least half covered), measured on a copy of at most 512 px. */
  measure() {
    if (!this.ctx) return 0;
    const scale = Math.min(1, 512 / Math.max(this.width, this.height));
    const w = Math.max(1, Math.round(this.width * scale));
    const hh = Math.max(1, Math.round(this.height * scale));
    const small = new OffscreenCanvas(w, hh);
    const sc = small.getContext('2d');
    sc.drawImage(this.canvas, 0, 0, w, hh);
    const d = sc.getImageData(0, 0, w, hh).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] >= 128) n += 1;
    return n / (w * hh);
  }

  _changed() {
    this.coverageValue = this.measure();
    this.coverage.textContent = `coverage ${(this.coverageValue * 100).toFixed(1)} %`;
    this.undoButton.disabled = !this.undoStack.length;
    this.redoButton.disabled = !this.redoStack.length;
    this.onChange(this.coverageValue);
  }

  /** Outpaint framing: the enlarged canvas drawn around the image, for an aspect 'W:H' and an anchor. */
  showFrame(aspect, anchor) {
    if (!aspect || !this.ctx) {
      this.frame.hidden = true;
      return;
    }
    const [aw, ah] = aspect.split(':').map(Number);
    const w = this.width;
    const hh = this.height;
    const tw = Math.max(w, Math.round((hh * aw) / ah));
    const th = Math.max(hh, Math.round((w * ah) / aw));
    const fw = tw - w;
    const fh = th - hh;
    const x = anchor.includes('left') ? 0 : anchor.includes('right') ? fw : fw / 2;
    const y = anchor.includes('top') ? 0 : anchor.includes('bottom') ? fh : fh / 2;
    this.frame.hidden = false;
    this.frame.style.left = `${(-x / w) * 100}%`;
    this.frame.style.top = `${(-y / hh) * 100}%`;
    this.frame.style.width = `${(tw / w) * 100}%`;
    this.frame.style.height = `${(th / hh) * 100}%`;
    this.frame.title = `outpaint canvas ${tw}×${th}`;
    // Fit the whole frame in the stage: scale it down and move its centre to the stage's centre.
    this.zoom = Math.min(w / tw, hh / th);
    const ratio = this.inner.clientWidth / w;
    const cx = (-x + tw / 2 - w / 2) * ratio;
    const cy = (-y + th / 2 - hh / 2) * ratio;
    this.pan = { x: -this.zoom * cx, y: -this.zoom * cy };
    this._style();
  }

  /** The mask as the API takes it: a PNG, opaque where kept, alpha 0 where the edit goes. Null when empty. */
  async blob() {
    if (!this.ctx || !this.coverageValue) return null;
    const out = new OffscreenCanvas(this.width, this.height);
    const c = out.getContext('2d');
    c.fillStyle = '#000';
    c.fillRect(0, 0, this.width, this.height);
    c.globalCompositeOperation = 'destination-out';
    c.drawImage(this.canvas, 0, 0);
    return out.convertToBlob({ type: 'image/png' });
  }
}
