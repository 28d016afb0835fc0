// imageforms.js — image bootstrap, build and register: each form's inputs
// are named by the API request's fields; the daemon's field errors appear
// beside them, what was typed is kept, and the operation's live stages
// follow with a cancel button.
//
// Test hooks: #bootstrap-form [name="distro|suite|name|mirror"],
// #build-form [name="from|name|presets|packages|script"] (the script is a
// file input read with FileReader into the request's script and
// script_name), #register-form [name="name|kernel|initrd|modules|rootfs|
// work_seed|link"]; each has #FORM-submit, errors [data-error-for="FIELD"],
// the operation in #image-op-progress (#op-stages li[data-stage], #op-cancel)
// and #image-op-result.

import { post } from '../api.js';
import { h, replace } from '../dom.js';
import { clearErrors, field, fieldError, formError, showError } from '../forms.js';
import { followOperation } from '../oplive.js';

export const name = 'imageforms';

const MAX_SCRIPT = 1 << 20; // the daemon's limit (AllowedScript)

export function mount(root, { live, params }) {
  const [which] = params;
  const ctl = new AbortController();
  const progress = h('div', { id: 'image-op-progress' });
  const result = h('div', { id: 'image-op-result', role: 'status' });
  const spec = FORMS[which](live);
  const submit = h('button', { type: 'submit', id: `${which}-submit`, class: 'primary' }, spec.submit);
  const form = h('form', { id: `${which}-form`, novalidate: true, 'aria-labelledby': `${which}-h` },
    spec.fields, formError(`${which}-form-error`), h('div', { class: 'actions' }, submit));
  root.append(h('nav', { class: 'crumbs', 'aria-label': 'breadcrumb' }, h('a', { href: '/images' }, 'Images'), ` / ${which}`),
    h('h1', { id: `${which}-h` }, spec.title), spec.intro ? h('p', { class: 'muted' }, spec.intro) : null, form, progress, result);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    replace(result);
    let req;
    try {
      req = await spec.request(form);
    } catch (err) {
      showError(form, err);
      return;
    }
    submit.disabled = true;
    try {
      const op = await post(spec.path, req, { signal: ctl.signal });
      const done = await followOperation(progress, op, { signal: ctl.signal });
      if (done.state === 'succeeded') {
        const img = done.result?.name || req.name || done.target;
        replace(result, h('p', {}, `Image ${img} is ready. `, h('a', { href: `/images/${encodeURIComponent(img)}`, id: 'image-op-open' }, `Open ${img}`)));
      } else if (done.error) {
        showError(form, done.error);
      }
    } catch (err) {
      if (err.name !== 'AbortError') showError(form, err);
    } finally {
      submit.disabled = false;
    }
  });
  form.querySelector('input, select')?.focus();
  // The from list follows the images as they come and go.
  const unsub = live.subscribe((kind) => {
    const sel = form.elements.from;
    if (!sel || (kind !== 'image' && kind !== 'all')) return;
    const keep = sel.value;
    replace(sel, [...imageSelect(live, 'from').children]);
    sel.value = keep;
  });
  return () => {
    unsub();
    ctl.abort();
  };
}

const val = (form, n) => form.elements[n].value.trim();
const words = (s) => s.split(/[\s,]+/).filter(Boolean);

// imageSelect lists the images a build can start from.
function imageSelect(live, nameAttr) {
  const sel = h('select', { name: nameAttr, required: true },
    h('option', { value: '' }, '— choose an image —'),
    [...live.images.values()].filter((i) => i.state === 'ready').sort((a, b) => a.name.localeCompare(b.name))
      .map((i) => h('option', { value: i.name }, i.name)));
  return sel;
}

const FORMS = {
  bootstrap: () => ({
    title: 'Bootstrap a base image',
    intro: 'Builds a Debian image from nothing with debootstrap: a few minutes, and it needs the Debian mirror.',
    submit: 'Bootstrap',
    path: '/v1/images/bootstrap',
    fields: [
      field('Distribution', h('select', { name: 'distro' }, h('option', { value: 'debian' }, 'debian'))),
      field('Suite', h('input', { name: 'suite', type: 'text', placeholder: 'bookworm', spellcheck: 'false' }), { hint: 'a Debian suite name; empty: the default' }),
      field('Name', h('input', { name: 'name', type: 'text', placeholder: 'e.g. debian-bookworm', spellcheck: 'false' }), { hint: 'empty: named after the suite' }),
      field('Mirror', h('input', { name: 'mirror', type: 'url', placeholder: 'the configured mirror', spellcheck: 'false' })),
    ],
    request: async (form) => {
      const req = { distro: val(form, 'distro') };
      for (const k of ['suite', 'name', 'mirror']) if (val(form, k)) req[k] = val(form, k);
      return req;
    },
  }),
  build: (live) => ({
    title: 'Build an image',
    intro: 'Derives a new image from a ready one: distro packages, then presets, then your script (as root, with /bin/sh).',
    submit: 'Build',
    path: '/v1/images/build',
    fields: [
      field('From image', imageSelect(live, 'from')),
      field('Name', h('input', { name: 'name', type: 'text', required: true, spellcheck: 'false' }), { hint: 'the new image’s name' }),
      h('fieldset', { class: 'field', 'data-field': 'presets' },
        h('legend', {}, 'Presets'),
        h('div', { class: 'field-check' },
          h('input', { type: 'checkbox', name: 'presets', value: 'agents', id: 'build-preset-agents' }),
          h('label', { for: 'build-preset-agents' }, 'agents — node, opencode, claude and pi, and opencode serve on guest port 4096 (glibc images)')),
        h('p', { class: 'field-error', 'data-error-for': 'presets', role: 'alert', hidden: true })),
      field('Packages', h('input', { name: 'packages', type: 'text', placeholder: 'e.g. golang-go make', spellcheck: 'false' }), { hint: 'Debian package names, separated by spaces or commas' }),
      field('Provisioning script', h('input', { name: 'script', type: 'file', accept: '.sh,text/x-shellscript,text/plain' }), { hint: 'optional: a shell script of up to 1 MiB, run as root' }),
    ],
    request: async (form) => {
      const req = { from: val(form, 'from'), name: val(form, 'name') };
      if (!req.from) throw fieldError('from', 'from is required: choose the image to build on');
      if (!req.name) throw fieldError('name', 'name is required: name the new image');
      const presets = [...form.querySelectorAll('input[name="presets"]:checked')].map((c) => c.value);
      if (presets.length) req.presets = presets;
      const pk = words(val(form, 'packages'));
      if (pk.length) req.packages = pk;
      const file = form.elements.script.files[0];
      if (file) {
        if (file.size > MAX_SCRIPT) throw fieldError('script', `script is ${file.size} bytes; the limit is ${MAX_SCRIPT}`, 'a shell script of up to 1MiB');
        req.script = await readText(file);
        req.script_name = file.name;
      }
      return req;
    },
  }),
  register: () => ({
    title: 'Register an image',
    intro: 'Registers a boot set you already have. Paths are absolute paths on the daemon’s host; the files are copied into banger’s image store unless linked.',
    submit: 'Register',
    path: '/v1/images/register',
    fields: [
      field('Name', h('input', { name: 'name', type: 'text', required: true, spellcheck: 'false' })),
      field('Kernel', h('input', { name: 'kernel', type: 'text', required: true, placeholder: '/path/to/vmlinux or vmlinuz', spellcheck: 'false' })),
      field('Initrd', h('input', { name: 'initrd', type: 'text', placeholder: 'optional', spellcheck: 'false' })),
      field('Modules', h('input', { name: 'modules', type: 'text', placeholder: 'optional: /lib/modules/RELEASE tree', spellcheck: 'false' })),
      field('Root filesystem', h('input', { name: 'rootfs', type: 'text', required: true, placeholder: '/path/to/rootfs.ext4', spellcheck: 'false' })),
      field('Work seed', h('input', { name: 'work_seed', type: 'text', placeholder: 'optional: generated when empty', spellcheck: 'false' })),
      field('Link instead of copying (the image stays unmanaged until promoted)', h('input', { name: 'link', type: 'checkbox' })),
    ],
    request: async (form) => {
      const req = {};
      for (const k of ['name', 'kernel', 'initrd', 'modules', 'rootfs', 'work_seed']) if (val(form, k)) req[k] = val(form, k);
      if (form.elements.link.checked) req.link = true;
      return req;
    },
  }),
};

// readText reads a file chosen in the form as text (FileReader).
function readText(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result));
    r.onerror = () => reject(fieldError('script', `script: could not read ${file.name}: ${r.error?.message || 'read error'}`));
    r.readAsText(file);
  });
}
