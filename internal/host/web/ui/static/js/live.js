// live.js — the daemon's state as the page knows it, kept current by the
// change feed GET /v1/events (NDJSON).
//
// At start, and after every "reset" line, it lists each kind once (VMs,
// images, operations); after that it only applies events. A broken stream
// is resumed with ?since=SEQ&epoch=EPOCH after a backoff, and the page
// shows a notice while it is down. Nothing polls per VM.

import { ApiError, get, ndjson, open, sleep } from './api.js';

const BACKOFF_MIN = 500;
const BACKOFF_MAX = 10000;

// Live holds VMs, images, operations (by name or id) and the sessions the
// feed announced, and tells subscribers what changed.
export class Live {
  constructor() {
    this.vms = new Map(); // name → api.VM
    this.images = new Map(); // name → api.Image
    this.ops = new Map(); // id → api.Operation
    this.sessions = new Map(); // vm name → Map(id → api.Session)
    this.loaded = false;
    this.seq = 0;
    this.epoch = '';
    this.state = { connected: false, message: 'connecting to bangerd…', retryAt: 0 };
    this.listeners = new Set();
    this.ctl = null;
  }

  // subscribe calls fn(kind, key, event) on every change: kind "vm",
  // "image", "operation", "session" (key: the VM's name), "all" (after a
  // re-list) or "connection".
  // It returns the function that unsubscribes.
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(kind, key, ev) {
    for (const fn of [...this.listeners]) {
      try {
        fn(kind, key, ev);
      } catch (err) {
        console.error('live listener', err);
      }
    }
  }

  setState(st) {
    this.state = st;
    this.emit('connection');
  }

  // start follows the feed until stop.
  start() {
    this.ctl = new AbortController();
    this.run(this.ctl.signal);
  }

  stop() {
    this.ctl?.abort();
  }

  async run(signal) {
    let backoff = BACKOFF_MIN;
    while (!signal.aborted) {
      try {
        await this.follow(signal, () => {
          backoff = BACKOFF_MIN;
        });
        if (signal.aborted) return;
        throw new Error('bangerd ended the event stream');
      } catch (err) {
        if (signal.aborted) return;
        const retryAt = Date.now() + backoff;
        let message = err.message || String(err);
        if (err instanceof ApiError && err.status === 401) {
          message = 'not logged in: run `banger web` and open the URL it prints';
        }
        this.setState({ connected: false, message, retryAt });
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, BACKOFF_MAX);
      }
    }
  }

  // follow reads one connection of the feed; onLive is called once it is
  // established (after hello, and after the re-list when one was needed).
  async follow(signal, onLive) {
    let url = '/v1/events';
    if (this.epoch) url += `?since=${this.seq}&epoch=${encodeURIComponent(this.epoch)}`;
    const res = await open(url, { signal });
    for await (const ev of ndjson(res)) {
      switch (ev.kind) {
        case 'hello':
          if (!this.epoch || ev.epoch !== this.epoch) {
            // A fresh stream is live from now: list what exists first.
            this.epoch = ev.epoch;
            this.seq = ev.seq;
            await this.relist(signal);
          }
          this.setState({ connected: true, message: '', retryAt: 0 });
          onLive();
          break;
        case 'reset':
          this.epoch = ev.epoch;
          this.seq = ev.seq;
          await this.relist(signal);
          break;
        default:
          if (ev.epoch) this.epoch = ev.epoch;
          if (ev.seq) this.seq = ev.seq;
          this.apply(ev);
      }
    }
  }

  // relist reads each kind once.
  async relist(signal) {
    const [vms, imgs, ops] = await Promise.all([
      get('/v1/vms', { signal }),
      get('/v1/images', { signal }),
      get('/v1/operations', { signal }),
    ]);
    this.vms = new Map((vms.vms || []).map((v) => [v.name, v]));
    this.images = new Map((imgs.images || []).map((i) => [i.name, i]));
    this.ops = new Map((ops.operations || []).map((o) => [o.id, o]));
    this.sessions = new Map();
    this.loaded = true;
    this.emit('all');
  }

  // apply folds one event into the state.
  apply(ev) {
    switch (ev.kind) {
      case 'vm': {
        const name = ev.vm_state?.name || ev.name;
        if (ev.removed) {
          // A removal carries the ID and name of the VM that went.
          for (const [n, v] of this.vms) if (v.id === ev.id || n === ev.name) this.vms.delete(n);
        } else if (ev.vm_state) {
          // A rename is not possible; the name keys the VM.
          this.vms.set(name, ev.vm_state);
        }
        this.emit('vm', name);
        break;
      }
      case 'image': {
        const name = ev.image_state?.name || ev.name;
        if (ev.removed) {
          for (const [n, i] of this.images) if (i.id === ev.id || n === ev.name) this.images.delete(n);
        } else if (ev.image_state) {
          this.images.set(name, ev.image_state);
        }
        this.emit('image', name);
        break;
      }
      case 'operation':
        if (ev.operation_state) this.ops.set(ev.operation_state.id, ev.operation_state);
        else if (ev.removed) this.ops.delete(ev.id);
        this.emit('operation', ev.id || ev.operation_state?.id);
        break;
      case 'session': {
        const vm = ev.vm || ev.session_state?.vm;
        if (!this.sessions.has(vm)) this.sessions.set(vm, new Map());
        const m = this.sessions.get(vm);
        if (ev.removed) m.delete(ev.id);
        else if (ev.session_state) m.set(ev.session_state.id, ev.session_state);
        this.emit('session', vm, ev);
        break;
      }
      default:
        // An event kind this page does not know: a newer daemon. Ignore.
    }
  }

  // lastOp returns the newest operation of one of kinds on target.
  lastOp(target, kinds) {
    let best = null;
    for (const op of this.ops.values()) {
      if (op.target !== target || !kinds.includes(op.kind)) continue;
      if (!best || op.created_at > best.created_at) best = op;
    }
    return best;
  }
}
