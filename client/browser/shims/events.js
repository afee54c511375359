// The part of Node's `events` module that readable-stream (inside simple-peer) and streamx
// use, for the browser bundle. Plain JS on purpose: readable-stream subclasses it the
// pre-ES2015 way (`EventEmitter.call(this)` + prototype inheritance), which a class forbids.

function listenersOf(emitter, name) {
  if (!emitter._pfEvents) emitter._pfEvents = new Map();
  return emitter._pfEvents.get(name);
}

export function EventEmitter() {
  this._pfEvents = new Map();
}

EventEmitter.EventEmitter = EventEmitter;
EventEmitter.defaultMaxListeners = 10;
EventEmitter.listenerCount = (emitter, name) => emitter.listenerCount(name);

function add(emitter, name, entry, isPrepend) {
  if (listenersOf(emitter, 'newListener')) emitter.emit('newListener', name, entry.original);
  const list = listenersOf(emitter, name) ?? [];
  // Lists are replaced, never mutated, so emit() can iterate safely while listeners change.
  emitter._pfEvents.set(name, isPrepend ? [entry, ...list] : [...list, entry]);
  return emitter;
}

function onceEntry(emitter, name, listener) {
  let isFired = false;
  const handler = function (...args) {
    if (isFired) return;
    isFired = true;
    emitter.removeListener(name, handler);
    listener.apply(emitter, args);
  };
  return { handler, original: listener };
}

const proto = EventEmitter.prototype;
proto.setMaxListeners = function () {
  return this;
};
proto.getMaxListeners = function () {
  return EventEmitter.defaultMaxListeners;
};
proto.on = function (name, listener) {
  return add(this, name, { handler: listener, original: listener }, false);
};
proto.addListener = proto.on;
proto.prependListener = function (name, listener) {
  return add(this, name, { handler: listener, original: listener }, true);
};
proto.once = function (name, listener) {
  return add(this, name, onceEntry(this, name, listener), false);
};
proto.prependOnceListener = function (name, listener) {
  return add(this, name, onceEntry(this, name, listener), true);
};
proto.removeListener = function (name, listener) {
  const list = listenersOf(this, name);
  if (!list) return this;
  let at = -1;
  for (let i = list.length - 1; i >= 0; i--) {
    if (list[i].original === listener || list[i].handler === listener) {
      at = i;
      break;
    }
  }
  if (at === -1) return this;
  const next = list.slice();
  next.splice(at, 1);
  if (next.length === 0) this._pfEvents.delete(name);
  else this._pfEvents.set(name, next);
  if (listenersOf(this, 'removeListener')) this.emit('removeListener', name, listener);
  return this;
};
proto.off = proto.removeListener;
proto.removeAllListeners = function (name) {
  if (!this._pfEvents) this._pfEvents = new Map();
  if (name === undefined) this._pfEvents.clear();
  else this._pfEvents.delete(name);
  return this;
};
proto.listeners = function (name) {
  return (listenersOf(this, name) ?? []).map((entry) => entry.original);
};
proto.rawListeners = function (name) {
  return (listenersOf(this, name) ?? []).map((entry) => entry.handler);
};
proto.listenerCount = function (name) {
  return listenersOf(this, name)?.length ?? 0;
};
proto.eventNames = function () {
  return this._pfEvents ? [...this._pfEvents.keys()] : [];
};
proto.emit = function (name, ...args) {
  const list = listenersOf(this, name);
  if (!list) {
    // Node semantics: an 'error' event nobody listens to throws.
    if (name === 'error') throw args[0] instanceof Error ? args[0] : new Error(`unhandled error event: ${String(args[0])}`);
    return false;
  }
  for (const entry of list) entry.handler.apply(this, args);
  return true;
};

export default EventEmitter;
