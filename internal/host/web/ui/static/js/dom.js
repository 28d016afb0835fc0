// dom.js — building the page without HTML strings.
//
// Every element is made with h(); text (from the daemon, a guest, or the
// user) goes in only as text nodes, never as HTML: nothing here parses
// markup, so a VM name or a console line cannot become an element or a
// script. Attributes are set one by one; there is no way to pass an
// inline style or an inline event handler (the page's CSP forbids both).

const SVG_NS = 'http://www.w3.org/2000/svg';

// h(tag, attrs, ...children) makes an element. attrs: plain attributes
// (class, id, for, type, data-*, aria-*...), and on: {event: fn} for
// listeners. Boolean true sets an empty attribute; false/null/undefined
// leave it out. Children: nodes, strings (as text), arrays, or nothing.
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

// s() is h() for SVG elements.
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'on') {
      for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    } else if (k === 'style' || /^on/i.test(k)) {
      throw new Error(`dom.h: attribute ${k} is not allowed (CSP: no inline style or handlers)`);
    } else if (k === 'value' && 'value' in el) {
      el.value = v == null ? '' : String(v);
    } else if (k === 'checked' || k === 'disabled' || k === 'selected') {
      el[k] = !!v;
    } else if (v === true) {
      el.setAttribute(k, '');
    } else if (v !== false && v != null) {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

// append adds children (nodes, strings as text, arrays) to el.
export function append(el, children) {
  for (const c of [children].flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// replace empties el and puts children in.
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// text sets el's text. Only ever textContent: guest and daemon text is data.
export function text(el, t) {
  el.textContent = t == null ? '' : String(t);
  return el;
}

// inert makes text safe to show where a terminal would interpret it: C0
// and C1 control characters (except newline and tab) become visible
// symbols (ESC shows as ␛), and the bidirectional overrides that could
// reorder what is read become <U+202E>-style marks. It is still inserted
// as text; this only keeps it from looking like something else.
export function inert(t) {
  return String(t).replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, (c) => {
    const n = c.charCodeAt(0);
    if (n < 0x20) return String.fromCharCode(0x2400 + n);
    if (n === 0x7f) return '\u2421';
    return `<U+${n.toString(16).toUpperCase().padStart(4, '0')}>`;
  });
}

// $ finds one element below root (document by default).
export function $(sel, root = document) {
  return root.querySelector(sel);
}

// keepFocus runs fn (which redraws part of the page) and gives the focus
// back to the element with the same id, so a live redraw does not take
// the keyboard user's place away.
export function keepFocus(fn) {
  const id = document.activeElement?.id;
  fn();
  if (id && document.activeElement?.id !== id) document.getElementById(id)?.focus();
}

// stateBadge is a state in words with a mark (readable without colour);
// the class only adds colour.
export function stateBadge(state, label) {
  return h('span', { class: `badge state-${state || 'unknown'}`, 'data-state': state || 'unknown' }, label);
}

// labelCells gives every cell of a table's body the title of its column
// (data-label), which a narrow window shows beside the value when it
// stacks the table's rows as cards.
export function labelCells(tbody) {
  const heads = [...(tbody.parentElement?.querySelectorAll('thead th') || [])].map((th) => th.textContent);
  for (const tr of tbody.rows) {
    [...tr.cells].forEach((td, i) => {
      if (heads[i] && td.colSpan === 1) td.dataset.label = heads[i];
    });
  }
  return tbody;
}
