// forms.js — form parts shared by every page: labelled fields, the
// daemon's field errors shown next to their field, a confirm dialog.
//
// Every input is named by the API field it sets (name="vcpus"), so an
// api.Error whose field is "vcpus" lands beside it, in the element
// [data-error-for="vcpus"]. What the user typed is never cleared by an
// error.

import { h, inert, text } from './dom.js';

let uid = 0;

// field wraps an input (or select/textarea) with its <label>, a hint and
// the element its errors go to. The input must have a name.
export function field(label, input, { hint = '', cls = '' } = {}) {
  const name = input.getAttribute('name');
  if (!input.id) input.id = `f-${name}-${++uid}`;
  const err = h('p', { class: 'field-error', 'data-error-for': name, id: `${input.id}-error`, role: 'alert', hidden: true });
  const hintEl = hint ? h('p', { class: 'hint', id: `${input.id}-hint` }, hint) : null;
  input.setAttribute('aria-describedby', [hintEl?.id, err.id].filter(Boolean).join(' '));
  const isCheck = input.type === 'checkbox';
  return h('div', { class: `field ${isCheck ? 'field-check' : ''} ${cls}`.trim(), 'data-field': name },
    isCheck ? [input, h('label', { for: input.id }, label)] : [h('label', { for: input.id }, label), input],
    hintEl, err);
}

// formError is the element for errors that concern no one field.
export function formError(id) {
  return h('p', { class: 'form-error', 'data-error-for': '', id, role: 'alert', hidden: true });
}

// clearErrors hides every error of form.
export function clearErrors(form) {
  for (const el of form.querySelectorAll('[data-error-for]')) {
    el.hidden = true;
    text(el, '');
  }
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

// showError puts err beside the input named by its field (focusing it),
// or in the form's own error element. labels maps field names to the
// labels the message may use in place of the field's JSON name.
// It returns the input it marked, if any.
export function showError(form, err, labels = {}) {
  const name = err.field || '';
  const input = name ? form.querySelector(`[name="${CSS.escape(name)}"]`) : null;
  const box = input ? form.querySelector(`[data-error-for="${CSS.escape(name)}"]`) : form.querySelector('[data-error-for=""]');
  let msg = err.message || String(err);
  if (input && labels[name] && msg.startsWith(name)) msg = labels[name] + msg.slice(name.length);
  if (err.allowed && !msg.includes(err.allowed)) msg += ` (allowed: ${err.allowed})`;
  if (box) {
    box.hidden = false;
    text(box, inert(msg));
  }
  if (input) {
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  }
  return input;
}

// fieldError reports a problem found before sending, as the daemon would.
export function fieldError(field, message, allowed = '') {
  return { field, message, allowed };
}

// confirmDialog asks a yes/no question in a modal <dialog id="confirm-dialog">
// (buttons #confirm-ok and #confirm-cancel; Escape cancels). It resolves
// to true when confirmed.
export function confirmDialog(question, okLabel = 'Confirm') {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'button', id: 'confirm-ok', class: 'danger' }, okLabel);
    const cancel = h('button', { type: 'button', id: 'confirm-cancel' }, 'Cancel');
    const dlg = h('dialog', { id: 'confirm-dialog', 'aria-labelledby': 'confirm-question' },
      h('p', { id: 'confirm-question' }, inert(question)),
      h('div', { class: 'actions' }, cancel, ok));
    let answered = false;
    const done = (v) => {
      if (answered) return;
      answered = true;
      dlg.close();
      dlg.remove();
      resolve(v);
    };
    ok.addEventListener('click', () => done(true));
    cancel.addEventListener('click', () => done(false));
    dlg.addEventListener('close', () => done(false));
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

// promptDialog asks for one line of text in a modal <dialog
// id="prompt-dialog"> (input #prompt-input, buttons #prompt-ok and
// #prompt-cancel; Enter answers, Escape cancels). It resolves to what was
// typed (trimmed; "" is an answer), or null when cancelled.
export function promptDialog(question, okLabel = 'OK', { placeholder = '' } = {}) {
  return new Promise((resolve) => {
    const input = h('input', { type: 'text', id: 'prompt-input', name: 'prompt', placeholder, autocomplete: 'off', 'aria-labelledby': 'prompt-question' });
    const ok = h('button', { type: 'submit', id: 'prompt-ok' }, okLabel);
    const cancel = h('button', { type: 'button', id: 'prompt-cancel' }, 'Cancel');
    const form = h('form', { method: 'dialog' },
      h('p', { id: 'prompt-question' }, inert(question)), input,
      h('div', { class: 'actions' }, cancel, ok));
    const dlg = h('dialog', { id: 'prompt-dialog', 'aria-labelledby': 'prompt-question' }, form);
    let answered = false;
    const done = (v) => {
      if (answered) return;
      answered = true;
      dlg.close();
      dlg.remove();
      resolve(v);
    };
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      done(input.value.trim());
    });
    cancel.addEventListener('click', () => done(null));
    dlg.addEventListener('close', () => done(null));
    document.body.append(dlg);
    dlg.showModal();
    input.focus();
  });
}

// flash shows a short message in the page's status line (#flash).
export function flash(message, kind = 'info') {
  const el = document.getElementById('flash');
  if (!el) return;
  el.dataset.kind = kind;
  el.hidden = false;
  text(el, inert(message));
  clearTimeout(flash.t);
  flash.t = setTimeout(() => {
    el.hidden = true;
  }, kind === 'error' ? 15000 : 5000);
}

// busy disables a button while fn runs, and reports fn's failure.
export async function busy(button, fn) {
  button.disabled = true;
  try {
    return await fn();
  } catch (err) {
    flash(err.message, 'error');
    return undefined;
  } finally {
    button.disabled = false;
  }
}
