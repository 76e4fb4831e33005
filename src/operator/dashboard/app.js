// lps-bridge dashboard. Plain browser JavaScript, no build step and no dependencies: it is
// compiled into the gateway binary and must work on a plant network with no internet.
//
// Data flow: one GET /api/state at load (and the command log, GET /api/commands, as the first
// entries of the Events card), then Server-Sent Events from /api/events: the full state
// (`state`) at connect, then the parts that changed (`patch`, a burst coalesced into one), and
// each B/events message (`event`). Every mutation is a POST whose JSON reply is shown to the
// operator, errors included.
'use strict';

const TOKEN_KEY = 'lps-bridge.operator-token';
const EVENT_LOG_MAX = 60;

let token = localStorage.getItem(TOKEN_KEY) || '';
let current = null; // the last full state received
let source = null; // the EventSource
let retryTimer = null;
let retryMs = 1000;
let profilesLoaded = false;
let lastUpdate = null; // when the last state arrived, for the offline banner

// ---------------------------------------------------------------------------------------------
// Small DOM and formatting helpers

const $ = (sel, root = document) => root.querySelector(sel);

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k.startsWith('data') || k.startsWith('aria') || k === 'role' || k === 'title') node.setAttribute(k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase()), v);
    else node[k] = v;
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

// replaceChildren, skipping null / undefined / false (the DOM would print them as text).
function fill(node, ...children) {
  node.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

function setText(id, value) {
  const node = document.getElementById(id);
  const text = value === null || value === undefined || value === '' ? '–' : String(value);
  if (node.textContent !== text) node.textContent = text;
  return node;
}

// EVE enum names ("ZDEVICE_STATE_ONLINE") read better without their prefix, in lower case.
function pretty(value, prefix) {
  if (value === null || value === undefined || value === '') return '–';
  let s = String(value);
  if (prefix && s.startsWith(prefix)) s = s.slice(prefix.length);
  return s.toLowerCase().replace(/_/g, ' ');
}

// Protobuf JSON timestamps carry nanoseconds; Date wants at most milliseconds.
function parseTime(value) {
  if (value === null || value === undefined || value === '') return null;
  const d = typeof value === 'number' ? new Date(value) : new Date(String(value).replace(/(\.\d{3})\d+/, '$1'));
  return Number.isNaN(d.getTime()) ? null : d;
}

const pad = (n) => String(n).padStart(2, '0');

function fmtTime(value) {
  const d = parseTime(value);
  if (!d) return '–';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fmtClock(value) {
  const d = parseTime(value) || new Date();
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function ago(value) {
  const d = parseTime(value);
  if (!d) return '';
  const s = Math.max(0, Math.round((Date.now() - d.getTime()) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

function bytes(n) {
  const v = Number(n);
  if (!Number.isFinite(v)) return '–';
  if (v < 1024) return `${v} B`;
  if (v < 1024 * 1024) return `${(v / 1024).toFixed(1)} KiB`;
  return `${(v / 1024 / 1024).toFixed(1)} MiB`;
}

function chip(text, kind, extra) {
  return h('span', { class: `chip chip-${kind}`, ...extra }, text);
}

// ---------------------------------------------------------------------------------------------
// Toasts: every API answer the operator should know about. Errors stay until dismissed.

function toast(kind, message) {
  const box = $('#toasts');
  const close = h('button', { type: 'button', class: 'toast-close', ariaLabel: 'Dismiss' }, '×');
  const node = h('div', { class: `toast toast-${kind}`, dataKind: kind, role: kind === 'error' ? 'alert' : 'status' },
    h('span', { class: 'toast-text' }, message), close);
  close.addEventListener('click', () => node.remove());
  box.prepend(node);
  while (box.children.length > 5) box.lastElementChild.remove();
  if (kind !== 'error') setTimeout(() => node.remove(), 6000);
}

// ---------------------------------------------------------------------------------------------
// HTTP: bearer token, 401 → ask for the token once and retry.

let tokenPrompt = null;
let tokenDeclined = false; // the operator closed the prompt: background requests stop asking

// Asks for the operator token. `auto`: asked by a background request, not by a click.
function askToken(reason, auto) {
  if (tokenPrompt) return tokenPrompt;
  if (auto && tokenDeclined) return Promise.resolve(null);
  const dialog = $('#token-dialog');
  $('#token-text').textContent = reason || 'The gateway answered 401: enter its operator.token. It is kept in this browser only.';
  $('#token-input').value = '';
  tokenPrompt = new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      tokenPrompt = null;
      if (dialog.returnValue !== 'save') {
        tokenDeclined = true;
        resolve(null);
        return;
      }
      tokenDeclined = false;
      token = $('#token-input').value.trim();
      localStorage.setItem(TOKEN_KEY, token);
      connectEvents(); // the stream needs the token too
      if (!profilesLoaded) loadProfiles();
      resolve(token);
    }, { once: true });
    dialog.returnValue = '';
    dialog.showModal();
  });
  return tokenPrompt;
}

$('#token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  $('#token-dialog').close('save');
});
$('#token-cancel').addEventListener('click', () => $('#token-dialog').close('cancel'));
$('#token-open').addEventListener('click', () => askToken());

// Resolves to { status, body } (body: parsed JSON or null); throws only when the gateway cannot
// be reached at all. A 401 asks for the token and retries once.
async function api(method, path, body, { auto = false, retried = false } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  let parsed = null;
  try {
    parsed = await response.json();
  } catch (_) {
    parsed = null;
  }
  if (response.status === 401 && !retried) {
    if (!current) setGateway('auth', 'The gateway wants an operator token to show its state.');
    const why = token ? 'The saved token was refused (401). Enter the current operator.token.' : undefined;
    if (await askToken(why, auto)) return api(method, path, body, { auto, retried: true });
  }
  return { status: response.status, body: parsed };
}

// Runs one mutation and tells the operator how it went. `what` names it in the messages.
async function act(what, path, body, button) {
  if (button) button.disabled = true;
  try {
    const { status, body: reply } = await api('POST', path, body);
    if (reply && reply.status === 'ok') {
      toast('ok', `${what}: ${describeOk(reply)}`);
      if (reply.note) toast('info', `${what}: ${reply.note}`);
      return reply;
    }
    const why = reply && reply.error ? reply.error : `HTTP ${status} with no error text`;
    toast('error', `${what} failed (${status}): ${why}`);
  } catch (err) {
    toast('error', `${what} failed: the gateway cannot be reached (${err.message || err})`);
  } finally {
    if (button) button.disabled = false;
  }
  return null;
}

function describeOk(reply) {
  if (reply.command) return `accepted as command #${reply.command.id}`;
  if (reply.cancelled) {
    const ids = reply.cancelled.map((c) => `#${c.id}`).join(', ');
    return ids ? `cancelled ${ids}` : 'nothing was pending';
  }
  if (reply.desired) return 'accepted';
  return 'ok';
}

// ---------------------------------------------------------------------------------------------
// Confirmation modal: names the target; purge also asks for the name to be typed.

function confirmAction({ title, text, ok, expect, danger = true }) {
  const dialog = $('#confirm');
  $('#confirm-title').textContent = title;
  $('#confirm-text').textContent = text;
  $('#confirm-ok').textContent = ok;
  $('#confirm-ok').className = danger ? 'danger-solid' : 'primary';
  $('#confirm-typed').hidden = !expect;
  $('#confirm-expected').textContent = expect || '';
  $('#confirm-input').value = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.returnValue = '';
    dialog.dataset.expect = expect || '';
    dialog.showModal();
    (expect ? $('#confirm-input') : $('#confirm-cancel')).focus();
  });
}

$('#confirm-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const dialog = $('#confirm');
  const expect = dialog.dataset.expect;
  if (expect && $('#confirm-input').value.trim() !== expect) {
    $('#confirm-input').setCustomValidity(`Type ${expect} exactly`);
    $('#confirm-input').reportValidity();
    return;
  }
  dialog.close('ok');
});
$('#confirm-input').addEventListener('input', (e) => e.target.setCustomValidity(''));
$('#confirm-cancel').addEventListener('click', () => $('#confirm').close('cancel'));

// ---------------------------------------------------------------------------------------------
// Live connection

// mode: live | connecting | offline (unreachable) | stalled (reachable, stream down) | auth
function setGateway(mode, detail) {
  const pill = $('#gateway-pill');
  pill.dataset.state = mode;
  pill.textContent = {
    live: 'Gateway: live', connecting: 'Gateway: connecting…', offline: 'Gateway: offline',
    stalled: 'Gateway: reconnecting…', auth: 'Gateway: token needed',
  }[mode];
  $('#gateway-banner').hidden = mode === 'live' || mode === 'connecting';
  $('#gateway-banner').dataset.state = mode;
  $('#gateway-banner-title').textContent = { offline: 'Gateway offline.', stalled: 'Live updates interrupted.', auth: 'Operator token needed.' }[mode] || '';
  if (detail) $('#gateway-banner-text').textContent = detail;
  document.body.dataset.gateway = mode;
}

function connectEvents() {
  clearTimeout(retryTimer);
  if (source) source.close();
  // EventSource cannot send headers; the gateway also accepts the token as ?token=.
  const url = token ? `/api/events?token=${encodeURIComponent(token)}` : '/api/events';
  const es = new EventSource(url);
  source = es;
  es.addEventListener('open', () => {
    retryMs = 1000;
    if (!profilesLoaded) loadProfiles(); // the gateway was unreachable when the page loaded
  });
  es.addEventListener('state', (e) => {
    heard(es);
    setGateway('live');
    render(JSON.parse(e.data));
  });
  // Only the parts that changed; every stream starts with a full `state`, so `current` is set.
  es.addEventListener('patch', (e) => {
    heard(es);
    if (current) render({ ...current, ...JSON.parse(e.data) });
  });
  es.addEventListener('event', (e) => { heard(es); logEvent(JSON.parse(e.data)); });
  // The gateway sends a ping every 15 s while idle: silence for 40 s means a half-open stream.
  es.addEventListener('ping', () => heard(es));
  heard(es);
  es.addEventListener('error', () => {
    // We reconnect ourselves (with backoff) so a 401 or a dead gateway is diagnosed, not retried blindly.
    es.close();
    if (source !== es) return;
    source = null;
    diagnose();
    retryTimer = setTimeout(connectEvents, retryMs);
    retryMs = Math.min(retryMs * 2, 15000);
  });
}

let silenceTimer = null;
// Restarts the silence watchdog; when it fires, the stream is treated as failed.
function heard(es) {
  clearTimeout(silenceTimer);
  silenceTimer = setTimeout(() => {
    if (source !== es) return;
    es.close();
    source = null;
    diagnose();
    connectEvents();
  }, 40000);
}

// Why did the stream fail? Ask /api/state: unreachable, a token problem, or a blip.
async function diagnose() {
  try {
    const response = await fetch('/api/state', { headers: token ? { Authorization: `Bearer ${token}` } : {}, cache: 'no-store' });
    if (response.status === 401) {
      setGateway('auth', 'The gateway wants an operator token to show its state.');
      clearTimeout(retryTimer); // saving a token reconnects; until then, retrying is pointless
      await askToken(undefined, true);
      return;
    }
    if (response.ok) {
      render(await response.json());
      setGateway('stalled', 'The gateway answers but its live stream dropped; reconnecting…');
      return;
    }
    setGateway('offline', `The gateway answered HTTP ${response.status}; reconnecting…`);
  } catch (_) {
    const since = current ? ` Last update ${fmtClock(lastUpdate)}.` : '';
    setGateway('offline', `Cannot reach lps-bridge; reconnecting…${since}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Rendering of the full state

function render(state) {
  current = state;
  lastUpdate = new Date();
  renderEve(state.eve || {});
  renderDevice(state.device || {});
  renderProfile(state.profile || {});
  renderSwitch((state.profile || {}).switch);
  showProfilePreview();
  renderApps(state.apps || []);
  renderRadio(state.radio || {});
  renderNetwork(state.network || {});
  renderLocation(state.location);
  renderStore(state.store || {});
}

// The store cannot write: commands are refused until it heals by itself; EVE is still served.
function renderStore(store) {
  const readOnly = store.state === 'read-only';
  $('#store-banner').hidden = !readOnly;
  $('#store-banner-text').textContent = readOnly
    ? `store read-only: ${store.reason}. Commands are refused until it can write again (it retries by itself); EVE is still served what is on disk.`
    : '';
}

function renderEve(eve) {
  const online = eve.state === 'online';
  const pill = $('#eve-pill');
  pill.dataset.state = online ? 'online' : 'offline';
  pill.textContent = online ? 'EVE: online' : 'EVE: offline';
  const stateNode = setText('eve-state', online ? 'online' : 'offline');
  stateNode.className = online ? 'good' : 'bad';
  setText('eve-last-seen', eve.last_seen ? `last seen ${fmtTime(eve.last_seen)} (${ago(eve.last_seen)})` : 'never seen');
  $('#eve-banner').hidden = online;
  $('#eve-banner-text').textContent = eve.last_seen
    ? `Last seen ${fmtTime(eve.last_seen)} (${ago(eve.last_seen)}). Commands are kept and delivered when EVE polls again.`
    : 'EVE has not polled this gateway yet. Check local_profile_server and profile_server_token in the node configuration.';
}

function commandSummary(cmd) {
  return `${pretty(cmd.action)} #${cmd.id}`;
}

function commandTime(cmd) {
  return cmd.finished_at_ms || cmd.delivered_at_ms || cmd.accepted_at_ms;
}

const OPEN = new Set(['accepted', 'delivered', 'stalled']);

function lifecycleKind(lc) {
  return { accepted: 'busy', delivered: 'busy', stalled: 'err', completed: 'ok', superseded: 'idle', cancelled: 'idle' }[lc] || 'idle';
}

const STEP_HELP = {
  accepted: 'accepted: on the gateway\'s disk',
  delivered: 'delivered: EVE received it',
  completed: 'completed: EVE reported it done',
  stalled: 'stalled: EVE received it again and again without reporting it done',
};

// The command cell: action, lifecycle chip, and the accepted → delivered → completed steps.
function fillCommand(cell, cmd) {
  cell.dataset.lifecycle = cmd ? cmd.lifecycle : '';
  if (!cmd) {
    fill(cell, h('span', { class: 'muted' }, 'none'));
    return;
  }
  const reached = { accepted: 1, delivered: 2, stalled: 3, completed: 3 }[cmd.lifecycle] || 0;
  // Labelled dots (title, aria-label, and the legend under the apps): a stalled command's last
  // step is "stalled" instead of "completed".
  const stalled = cmd.lifecycle === 'stalled';
  const steps = ['accepted', 'delivered', stalled ? 'stalled' : 'completed'];
  const label = steps.map((s, i) => `${s} ${i < reached ? (s === 'stalled' ? '✗' : '✓') : '…'}`).join(' → ');
  const dots = h('span', { class: 'steps', role: 'img', ariaLabel: label, title: label },
    steps.map((s, i) => h('span', { class: i < reached ? `step ${s === 'stalled' ? 'stalled' : 'done'}` : 'step', title: STEP_HELP[s], dataStep: s })));
  fill(cell,
    h('span', { class: 'cmd-name' }, commandSummary(cmd)), ' ',
    chip(cmd.lifecycle, lifecycleKind(cmd.lifecycle), { dataField: 'lifecycle' }), ' ',
    reached ? dots : null,
    h('span', { class: 'muted small cmd-time', title: `source: ${cmd.source}` }, fmtClock(commandTime(cmd))),
    // Once cancelled or completed, the stall is history (the Events card keeps it).
    cmd.lifecycle === 'stalled' && cmd.stalled_reason ? h('div', { class: 'bad small', dataField: 'stalled-reason' }, cmd.stalled_reason) : null,
  );
}

function renderDevice(dev) {
  setText('device-uuid', dev.device_uuid);
  setText('header-device', dev.device_uuid || 'not reported yet');
  const state = pretty(dev.state, 'ZDEVICE_STATE_');
  setText('device-state', state).className = state === 'online' ? 'good' : state === '–' ? '' : 'warn';
  setText('device-boot-time', dev.boot_time ? `${fmtTime(dev.boot_time)} (${ago(dev.boot_time)})` : null);
  setText('device-boot-reason', pretty(dev.last_boot_reason, 'BOOT_REASON_'));
  const reasons = (dev.maintenance_mode_reasons || []).map((r) => pretty(r, 'MAINTENANCE_MODE_REASON_')).filter((r) => r !== 'none');
  const maintenance = reasons.length ? reasons.join(', ') : dev.device_uuid ? 'none' : null;
  setText('device-maintenance', maintenance).className = reasons.length ? 'warn' : '';
  const cell = $('#device-command');
  fillCommand(cell, dev.command);
  const queued = (dev.queued_commands || []).length;
  if (queued) cell.append(h('span', { class: 'muted small' }, ` +${queued} queued: ${dev.queued_commands.map(commandSummary).join(', ')}`));
}

function renderProfile(p) {
  setText('profile-desired', p.desired ? p.desired : "none (the controller's global profile applies)");
  const fetched = $('#profile-fetched');
  const set = !!p.set_at;
  fetched.dataset.fetched = String(!!p.fetched);
  fetched.dataset.set = String(set);
  // "Fetched" is all the gateway can see: EVE reports no profile, and drops answers with a wrong token.
  fetched.replaceChildren(!set ? h('span', { class: 'muted' }, 'not set')
    : p.fetched ? chip('fetched (not confirmed applied)', 'ok') : chip('not fetched yet', 'busy'));
  setText('profile-set-at', p.set_at ? fmtTime(p.set_at) : null);
  // EVE never reports the profile it runs: the device card shows the override and its fetch.
  const notApplied = { title: 'EVE fetched the profile; whether it applied it shows in the apps\' states' };
  fill($('#device-profile'), p.desired ? [p.desired, ' ', p.fetched ? chip('fetched by EVE', 'ok', notApplied) : chip('not fetched yet', 'busy')]
    : h('span', { class: 'muted' }, 'none (global profile)'));
}

// How the last switch went (EVE's app reports after it fetched the profile).
function renderSwitch(sw) {
  const cell = $('#profile-switch');
  cell.dataset.status = sw ? sw.status : '';
  if (!sw) return fill(cell, h('span', { class: 'muted' }, 'none yet'));
  if (sw.status === 'settling') return fill(cell, chip('apps switching…', 'busy'));
  const secs = sw.duration_ms !== undefined ? `${(sw.duration_ms / 1000).toFixed(1)} s` : '';
  const took = secs ? ` in ${secs}` : '';
  if (sw.status === 'unsettled') {
    const moving = (sw.in_transition || []).map((a) => `${a.app} ${pretty(a.state, '')}`).join(', ');
    return fill(cell, chip('not settled', 'bad'), ` after ${secs}${moving ? ': ' + moving : ''}`);
  }
  const parts = [];
  if ((sw.started || []).length) parts.push(`started ${sw.started.join(', ')}`);
  if ((sw.halted || []).length) parts.push(`halted ${sw.halted.join(', ')}`);
  if ((sw.errors || []).length) parts.push(`in error: ${sw.errors.map((e) => e.app).join(', ')}`);
  const verdict = sw.matches === undefined ? null : sw.matches ? chip('as configured', 'ok') : chip('differs from [[profiles]] apps', 'warn');
  return fill(cell, chip('settled', 'ok'), `${took}${parts.length ? ': ' + parts.join('; ') : ''} `, verdict);
}

// "Switching to night will halt vision, start trainer.", from [[profiles]] apps and the apps
// running now; '' when the page cannot know (no apps list for that profile).
function switchEffect(profile) {
  const option = [...$('#profile-select').options].find((o) => o.value === profile && o.dataset.apps);
  if (!option || !current) return '';
  const apps = JSON.parse(option.dataset.apps);
  const running = (current.apps || []).filter((a) => a.state === 'RUNNING').map((a) => a.name);
  const halt = running.filter((n) => !apps.includes(n));
  const start = apps.filter((n) => !running.includes(n));
  const parts = [];
  if (halt.length) parts.push(`halt ${halt.join(', ')}`);
  if (start.length) parts.push(`start ${start.join(', ')}`);
  return parts.length ? `Switching to ${profile} will ${parts.join(', ')}.` : `Switching to ${profile} changes no app.`;
}

function showProfilePreview() {
  $('#profile-preview').textContent = switchEffect($('#profile-select').value);
}

async function loadSchedules() {
  const cell = $('#profile-schedules');
  try {
    const { body } = await api('GET', '/api/schedules', undefined, { auto: true });
    if (!Array.isArray(body)) return;
    if (!body.length) return fill(cell, h('span', { class: 'muted' }, 'none configured'));
    fill(cell, h('ul', { class: 'plain' }, body.map((s) => h('li', { dataSchedule: s.name },
      `${s.name}: `, s.next ? `next ${s.next}` : 'disabled',
      s.last && s.last.status === 'error' ? [' ', chip(`last failed: ${s.last.error}`, 'bad')] : null))));
  } catch (err) {
    // Unreachable: shown by the gateway banner; tried again on the next refresh.
  }
}

// --- Apps table: rows are kept per app and patched, so an open select or focus survives updates.

const BOOT = { BOOT_ORDER_USB: 'usb', BOOT_ORDER_NOUSB: 'nousb', BOOT_ORDER_UNSPECIFIED: 'default' };
const BOOT_SOURCE = { BOOT_ORDER_SOURCE_LPS: 'LPS', BOOT_ORDER_SOURCE_CONTROLLER: 'controller', BOOT_ORDER_SOURCE_DEVICE_PROPERTY: 'device property' };

function stateKind(s) {
  if (s === 'RUNNING') return 'ok';
  if (s === 'HALTED' || s === 'INSTALLED') return 'idle';
  if (s === 'ERROR') return 'err';
  return 'busy';
}

function appRef(app) {
  return app.id || app.name;
}

function buildAppRow(app) {
  const name = app.name || app.id;
  const cell = (field, label) => h('td', { dataField: field, dataLabel: label });
  const boot = h('select', { dataAction: 'boot', ariaLabel: `Set USB boot order of ${name}` },
    h('option', { value: '' }, 'Boot order…'),
    h('option', { value: 'usb' }, 'usb (boot from USB first)'),
    h('option', { value: 'nousb' }, 'nousb (never from USB)'),
    h('option', { value: 'default' }, 'default (remove override)'));
  // On a phone the actions sit behind the row's Actions button, so each app is one short card.
  const actions = h('td', { class: 'row-actions', dataLabel: 'Actions' },
    h('button', { type: 'button', class: 'ghost menu-toggle', dataAction: 'menu', ariaExpanded: 'false', ariaLabel: `Actions for ${name}` }, 'Actions ▾'),
    h('div', { class: 'app-actions' },
      h('button', { type: 'button', dataAction: 'restart', ariaLabel: `Restart ${name}` }, 'Restart'),
      h('button', { type: 'button', class: 'danger', dataAction: 'purge', ariaLabel: `Purge ${name}` }, 'Purge'),
      boot,
      h('button', { type: 'button', class: 'ghost', dataAction: 'cancel', ariaLabel: `Cancel the pending command of ${name}` }, 'Cancel')));
  return h('tr', { dataApp: name },
    h('th', { scope: 'row', dataField: 'name', dataLabel: 'App' }),
    cell('state', 'State'), cell('version', 'Version'), cell('error', 'Error'),
    cell('boot', 'USB boot'), cell('command', 'Command'), actions);
}

function updateAppRow(row, app) {
  const name = app.name || app.id;
  row.dataset.app = name;
  row.dataset.appId = app.id || '';
  const f = (field) => row.querySelector(`[data-field="${field}"]`);
  fill(f('name'), h('span', { class: 'app-name' }, name), h('span', { class: 'muted small mono app-id', title: app.id }, (app.id || '').slice(0, 8)));
  f('state').replaceChildren(chip(app.state || 'unknown', stateKind(app.state)));
  f('state').dataset.state = app.state || '';
  f('version').textContent = app.version || '–';
  const err = app.err && app.err.description;
  fill(f('error'), err ? h('span', { class: 'bad', title: pretty(app.err.severity, 'SEVERITY_') }, err) : h('span', { class: 'muted' }, '–'));
  f('error').dataset.empty = String(!err);
  const order = BOOT[app.boot_order] || pretty(app.boot_order, 'BOOT_ORDER_');
  const src = app.boot_source && app.boot_source !== 'BOOT_ORDER_SOURCE_UNSPECIFIED'
    ? `from ${BOOT_SOURCE[app.boot_source] || pretty(app.boot_source, 'BOOT_ORDER_SOURCE_')}` : '';
  const desired = app.boot_desired ? BOOT[app.boot_desired] || pretty(app.boot_desired, 'BOOT_ORDER_') : null;
  fill(f('boot'),
    h('span', {}, order), src ? h('span', { class: 'muted small' }, ` ${src}`) : null,
    desired ? h('div', { class: 'small' }, `override: ${desired}${desired !== order ? ' (pending)' : ''}`) : null);
  // A HALTED app was stopped by the profile (or shut down): EVE ignores a restart, so say why
  // instead of offering one.
  const halted = app.state === 'HALTED';
  const profile = current && current.profile && current.profile.desired;
  const hint = f('state').querySelector('.halted-hint') || h('div', { class: 'muted small halted-hint' });
  hint.textContent = halted ? `stopped by ${profile ? `profile ${profile}` : 'the active profile or a shutdown'}: EVE does not restart a halted app; switch profile to run it` : '';
  if (halted) f('state').append(hint);
  row.querySelector('[data-action="restart"]').hidden = halted;
  fillCommand(f('command'), app.command);
  const open = app.command && OPEN.has(app.command.lifecycle);
  row.querySelector('[data-action="cancel"]').hidden = !open;
}

function renderApps(apps) {
  const body = $('#apps-table tbody');
  const rows = new Map([...body.rows].map((r) => [r.dataset.key, r]));
  let previous = null;
  for (const app of apps) {
    const key = appRef(app);
    let row = rows.get(key);
    if (!row) {
      row = buildAppRow(app);
      row.dataset.key = key;
    }
    rows.delete(key);
    updateAppRow(row, app);
    // Keep EVE's order without re-inserting rows that are already in place.
    const expected = previous ? previous.nextSibling : body.firstChild;
    if (row !== expected) body.insertBefore(row, expected);
    previous = row;
  }
  for (const gone of rows.values()) gone.remove();
  $('#apps-empty').hidden = apps.length > 0;
  $('#apps-wrap').hidden = apps.length === 0;
  $('#apps-legend').hidden = apps.length === 0;
  $('#apps-count').textContent = apps.length ? `(${apps.length})` : '';
}

function renderRadio(radio) {
  const d = radio.desired;
  const desired = $('#radio-desired');
  desired.replaceChildren();
  if (!d) desired.append(h('span', { class: 'muted' }, "not set (EVE's own setting)"));
  else {
    desired.append(d.radio_silence ? 'on' : 'off', ' ', chip(d.status, { applied: 'ok', pending: 'busy', failed: 'err' }[d.status] || 'idle'));
    if (d.error) desired.append(h('div', { class: 'bad small' }, d.error));
  }
  const r = radio.reported;
  const reported = $('#radio-reported');
  reported.replaceChildren();
  if (!r) reported.append(h('span', { class: 'muted' }, 'not reported yet'));
  else {
    reported.append(r.radio_silence ? 'on' : 'off');
    if (r.config_error) reported.append(h('div', { class: 'bad small' }, r.config_error));
  }
  const box = $('#radio-modems');
  // The blocks are rebuilt on every update: keep the details the operator opened open.
  const opened = new Set([...box.querySelectorAll('details[open]')].map((d) => d.closest('.modem').dataset.modem));
  box.replaceChildren();
  const metrics = new Map(((r && r.cellular_metrics) || []).map((m) => [m.logicallabel, m]));
  for (const modem of (r && r.cellular_status) || []) {
    const block = box.appendChild(modemBlock(modem, metrics.get(modem.logicallabel)));
    block.querySelector('details').open = opened.has(block.dataset.modem);
  }
  if (!box.children.length) box.append(h('p', { class: 'muted' }, 'No cellular modems reported.'));
}

function modemBlock(modem, metric) {
  const m = modem.module || {};
  const lines = [];
  const title = [m.manufacturer, m.model].filter(Boolean).join(' ');
  const opState = pretty(m.operating_state, 'Z_CELLULAR_OPERATING_STATE_');
  lines.push(h('div', { class: 'modem-head' }, h('strong', {}, modem.logicallabel || m.name || 'modem'), title ? ` · ${title}` : '', ' ',
    chip(opState, opState.startsWith('online') ? 'ok' : opState === 'radio off' ? 'idle' : 'busy')));
  const facts = h('dl', { class: 'facts compact' });
  const add = (k, v) => v && facts.append(h('dt', {}, k), h('dd', {}, v));
  add('IMEI', m.imei);
  add('Firmware', m.firmware_version);
  for (const sim of modem.sim_cards || []) {
    add(`SIM ${sim.name || sim.slot_number || ''}`.trim(), `${sim.state || '–'}${sim.slot_activated ? ', active' : ''}, ICCID ${sim.iccid || '–'}`);
  }
  for (const p of modem.providers || []) {
    const flags = [p.current_serving && 'serving', p.roaming && 'roaming', p.forbidden && 'forbidden'].filter(Boolean).join(', ');
    add('Provider', `${p.description || '–'} (${p.plmn || '?'})${flags ? ' · ' + flags : ''}`);
  }
  const sig = (metric && metric.signal_strength) || {};
  const parts = [['RSSI', sig.rssi, 'dBm'], ['RSRP', sig.rsrp, 'dBm'], ['RSRQ', sig.rsrq, 'dB'], ['SNR', sig.snr, 'dB']]
    .filter(([, v]) => v !== undefined && v !== null).map(([k, v, u]) => `${k} ${v} ${u}`);
  add('Signal', parts.length ? parts.join(' · ') : 'no signal metrics');
  const stats = metric && metric.packet_stats;
  if (stats) add('Traffic', `rx ${bytes((stats.rx || {}).totalBytes || 0)} · tx ${bytes((stats.tx || {}).totalBytes || 0)}`);
  for (const e of [modem.config_error, modem.probe_error]) if (e) lines.push(h('div', { class: 'bad small' }, e));
  lines.push(h('details', { class: 'modem-details' }, h('summary', {}, 'Modem details (IMEI, SIM, provider, signal)'), facts));
  return h('div', { class: 'modem', dataModem: modem.logicallabel || '' }, lines);
}

function renderNetwork(net) {
  const reported = net.reported || {};
  const overridden = new Set(((reported.local_config || {}).ports || []).map((p) => p.logical_label));
  const ports = reported.port_status || [];
  fill($('#ports'), ports.map((p) => {
    const addresses = [
      (p.ip_addresses || []).join(', ') || 'no address',
      p.gateways && p.gateways.length ? `gw ${p.gateways.join(', ')}` : null,
      p.dns_servers && p.dns_servers.length ? `dns ${p.dns_servers.join(', ')}` : null,
    ].filter(Boolean).join(' · ');
    return h('li', { dataPort: p.logical_label || p.interface_name },
      h('div', { class: 'port-head' },
        h('strong', {}, p.logical_label || p.interface_name),
        p.interface_name && p.interface_name !== p.logical_label ? h('span', { class: 'muted small' }, p.interface_name) : null,
        chip(p.link_up ? 'link up' : 'link down', p.link_up ? 'ok' : 'err'),
        overridden.has(p.logical_label) ? chip('local override', 'busy') : null,
        h('span', { class: 'muted small port-mtu' }, p.mtu ? `MTU ${p.mtu}` : '')),
      h('div', { class: 'mono small port-addr' }, addresses));
  }));
  $('#ports-empty').hidden = ports.length > 0;
  const t = reported.config_testing;
  fill($('#network-testing'), t ? [
    'Controller ', t.controller_reachable ? chip('reachable', 'ok') : chip('unreachable', 'err'),
    t.last_test_time ? h('span', { class: 'muted small' }, ` tested ${fmtTime(t.last_test_time)}`) : null,
    t.connectivity_error ? h('div', { class: 'bad small' }, t.connectivity_error) : null,
  ] : []);

  const d = net.desired;
  const desired = $('#network-desired');
  desired.replaceChildren();
  if (!d) desired.append(h('span', { class: 'muted' }, "none (the controller's config)"));
  else {
    const labels = (d.ports || []).map((p) => p.logical_label).join(', ');
    desired.append(d.reverting ? 'reverting to the controller' : labels || 'revert', ' ',
      chip(d.status, { applied: 'ok', pending: 'busy', failed: 'err' }[d.status] || 'idle'));
    if (d.error) desired.append(h('div', { class: 'bad small' }, d.error));
  }
  const local = reported.local_config || {};
  const node = $('#network-local');
  node.replaceChildren((local.ports || []).map((p) => p.logical_label).join(', ') || h('span', { class: 'muted' }, 'none'));
  if (local.error_message) node.append(h('div', { class: 'bad small' }, local.error_message));
}

function renderLocation(loc) {
  if (!loc) {
    for (const id of ['location-latlon', 'location-alt', 'location-reliability', 'location-time', 'location-source']) setText(id, null);
    setText('location-latlon', 'no fix reported');
    return;
  }
  const num = (v, digits) => (typeof v === 'number' ? v.toFixed(digits) : '–');
  setText('location-latlon', `${num(loc.latitude, 5)}, ${num(loc.longitude, 5)}`);
  setText('location-alt', typeof loc.altitude === 'number' && loc.altitude !== -32768 ? `${loc.altitude.toFixed(1)} m` : 'unknown');
  const unc = (v) => (typeof v === 'number' && v >= 0 ? ` ±${v.toFixed(1)} m` : '');
  setText('location-reliability',
    `horizontal ${pretty(loc.horizontal_reliability, 'LOC_RELIABILITY_')}${unc(loc.horizontal_uncertainty)}, vertical ${pretty(loc.vertical_reliability, 'LOC_RELIABILITY_')}${unc(loc.vertical_uncertainty)}`);
  setText('location-time', loc.utc_timestamp ? `${fmtTime(loc.utc_timestamp)} (${ago(loc.utc_timestamp)})` : null);
  setText('location-source', loc.logicallabel);
}

// ---------------------------------------------------------------------------------------------
// Event log (B/events messages as they arrive)

const BAD_EVENTS = new Set(['radio_failed', 'network_rejected', 'rule_failed', 'eve_offline', 'command_cancelled', 'command_stalled', 'store_failed', 'schedule_failed', 'profile_unsettled']);

function eventSummary(e) {
  const app = e.app ? e.app.name || e.app.id : null;
  if (e.event.startsWith('command_')) return `${pretty(e.action)} ${app || 'device'} #${e.id}${e.source ? ` (${e.source})` : ''}${e.stalled_reason ? `: ${e.stalled_reason}` : ''}`;
  if (e.schedule) return `${e.schedule} (${e.entry}${e.missed ? ', missed' : ''})${e.error ? `: ${e.error}` : ''}`;
  if (e.event === 'profile_settled') return `profile "${e.profile}" settled${(e.started || []).length ? `, started ${e.started.join(', ')}` : ''}${(e.halted || []).length ? `, halted ${e.halted.join(', ')}` : ''}${e.matches === false ? ' (differs from [[profiles]] apps)' : ''}`;
  if (e.event === 'profile_unsettled') return `profile "${e.profile}" not settled: ${(e.in_transition || []).map((a) => `${a.app} ${a.state}`).join(', ')}`;
  if ('profile' in e) return `profile "${e.profile}"${e.profile === '' ? ' (cleared)' : ''}`;
  if ('radio_silence' in e) return `radio silence ${e.radio_silence ? 'on' : 'off'}${e.error ? `: ${e.error}` : ''}`;
  if (e.event.startsWith('boot_order')) {
    if (e.overrides) return e.overrides.map((o) => `${o.app.name || o.app.id}=${o.boot}`).join(', ') || 'no overrides';
    return `${app} → ${e.boot}`;
  }
  if (e.event.startsWith('network')) return `${(e.ports || []).join(', ') || 'revert'}${e.error ? `: ${e.error}` : ''}${e.reason ? `: ${e.reason}` : ''}`;
  if (e.event === 'store_failed') return `read-only: ${e.reason}`;
  if (e.event === 'store_recovered') return `writable again after ${Math.round((e.read_only_ms || 0) / 1000)} s`;
  if (e.rule) return `${e.rule}${e.error ? `: ${e.error}` : ''}${e.reason ? `: ${e.reason}` : ''}`;
  const rest = Object.fromEntries(Object.entries(e).filter(([k]) => k !== 'event' && k !== 'at'));
  return Object.keys(rest).length ? JSON.stringify(rest).slice(0, 160) : '';
}

// `history`: an entry from the command log at load, appended below the live ones.
function logEvent(e, history) {
  const list = $('#event-log');
  const kind = BAD_EVENTS.has(e.event) ? 'err' : e.event.endsWith('completed') || e.event.endsWith('applied') || e.event === 'eve_online' ? 'ok' : 'idle';
  list[history ? 'append' : 'prepend'](h('li', { dataEvent: e.event, dataHistory: history ? 'true' : null },
    h('time', { class: 'muted mono small', dateTime: e.at || '' }, fmtClock(e.at)),
    chip(e.event.replace(/_/g, ' '), kind),
    h('span', { class: 'event-text' }, eventSummary(e))));
  while (list.children.length > EVENT_LOG_MAX) list.lastElementChild.remove();
  $('#event-empty').hidden = true;
}

// The command log as history: each command's latest step, newest first, with its source.
async function loadHistory() {
  try {
    const { body } = await api('GET', `/api/commands?limit=${EVENT_LOG_MAX}`, undefined, { auto: true });
    if (!Array.isArray(body) || $('#event-log').children.length) return;
    for (const cmd of body) {
      const at = cmd.finished_at_ms || cmd.delivered_at_ms || cmd.accepted_at_ms;
      logEvent({ ...cmd, event: `command_${cmd.lifecycle}`, at: at ? new Date(at).toISOString() : '' }, true);
    }
  } catch (_) {
    // Unreachable: the gateway banner says so; live events still arrive once it is back.
  }
}

// ---------------------------------------------------------------------------------------------
// Actions

function deviceName() {
  const uuid = current && current.device && current.device.device_uuid;
  return uuid ? `node ${uuid}` : 'the node (EVE has not reported its UUID yet)';
}

const DEVICE_ACTIONS = {
  reboot: { title: 'Reboot the node?', text: (n) => `EVE reboots ${n}. Every app stops until the node is back.`, ok: 'Reboot node' },
  shutdown: { title: 'Shut down all apps?', text: (n) => `EVE shuts down every app instance on ${n}. The node itself stays on.`, ok: 'Shut down apps' },
  poweroff: { title: 'Power off the node?', text: (n) => `EVE shuts down every app and powers off ${n}. It stays off until someone powers it on at the site.`, ok: 'Power off node' },
  collect_info: { title: 'Collect diagnostics?', text: (n) => `EVE collects a diagnostic bundle on ${n}.`, ok: 'Collect info', danger: false },
};

async function onAppAction(button, row) {
  const name = row.dataset.app;
  const path = `/api/apps/${encodeURIComponent(row.dataset.appId || name)}`;
  const action = button.dataset.action;
  if (action === 'menu') {
    const open = row.dataset.open !== 'true';
    row.dataset.open = String(open);
    button.setAttribute('aria-expanded', String(open));
  } else if (action === 'restart') {
    const ok = await confirmAction({ title: `Restart app ${name}?`, text: `EVE restarts the app instance ${name}. Its volumes are kept.`, ok: `Restart ${name}`, danger: false });
    if (ok) await act(`Restart ${name}`, path, { command: 'restart' }, button);
  } else if (action === 'purge') {
    const ok = await confirmAction({
      title: `Purge app ${name}?`,
      text: `This deletes the volumes of ${name} and starts it from a fresh copy. Data in its volumes is lost.`,
      ok: `Purge ${name}`,
      expect: name,
    });
    if (ok) await act(`Purge ${name}`, path, { command: 'purge' }, button);
  } else if (action === 'cancel') {
    await act(`Cancel command of ${name}`, path, { cancel: true }, button);
  }
}

document.addEventListener('click', async (e) => {
  const button = e.target.closest('button[data-action]');
  if (!button) return;
  const row = button.closest('tr[data-app]');
  if (row) return onAppAction(button, row);
  const action = button.dataset.action;
  if (DEVICE_ACTIONS[action]) {
    const spec = DEVICE_ACTIONS[action];
    if (await confirmAction({ title: spec.title, text: spec.text(deviceName()), ok: spec.ok, danger: spec.danger !== false })) {
      await act(spec.ok, '/api/device', { command: action }, button);
    }
  } else if (action === 'cancel-device') {
    await act('Cancel device commands', '/api/device', { cancel: true }, button);
  } else if (action === 'radio-on' || action === 'radio-off') {
    const on = action === 'radio-on';
    const ok = await confirmAction(on
      ? { title: 'Turn radio silence on?', text: `EVE switches off every radio (cellular modems, Wi-Fi) of ${deviceName()}. A node reached only by radio becomes unreachable until radio silence is turned off locally.`, ok: 'Radio silence on' }
      : { title: 'Turn radio silence off?', text: `EVE switches the radios of ${deviceName()} on again: the node transmits and may connect over cellular or Wi-Fi.`, ok: 'Radio silence off', danger: false });
    if (ok) await act(`Radio silence ${on ? 'on' : 'off'}`, '/api/radio', { radio_silence: on }, button);
  }
});

// What a boot order does to the app: it decides whether a USB device can boot it.
const BOOT_EFFECT = {
  usb: (n) => `EVE boots ${n} from a USB device first when the app next starts: whatever is on a USB stick plugged into the node runs instead of ${n}'s own disk.`,
  nousb: (n) => `EVE never boots ${n} from USB: it starts from its own disk when the app next starts, even with a bootable USB device plugged in.`,
  default: (n) => `EVE drops the gateway's override: the controller's (or a device property's) USB boot order for ${n} applies again when the app next starts.`,
};

document.addEventListener('change', async (e) => {
  const select = e.target.closest('select[data-action="boot"]');
  if (!select || !select.value) return;
  const row = select.closest('tr[data-app]');
  const name = row.dataset.app;
  const choice = select.value;
  select.value = '';
  const ok = await confirmAction({
    title: `Set the USB boot order of ${name} to ${choice}?`,
    text: BOOT_EFFECT[choice](name),
    ok: `Boot order ${choice}`,
    danger: choice === 'usb',
  });
  if (ok) await act(`USB boot order of ${name} → ${choice}`, `/api/apps/${encodeURIComponent(row.dataset.appId || name)}`, { boot: choice }, select);
});

$('#profile-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  // A typed name counts only while its field is shown: a folded field cannot surprise anyone.
  const typed = $('#profile-other').open ? $('#profile-custom').value.trim() : '';
  const profile = typed || $('#profile-select').value;
  if (!profile) {
    toast('error', 'Choose a profile or type its name (use "Clear override" to remove the local profile).');
    return;
  }
  const ok = await confirmAction({
    title: `Switch to profile ${profile}?`,
    text: `EVE halts every app whose profile list does not include ${profile} and starts those that do (apps with no profile list keep running). ${switchEffect(profile) || `Which of the apps that halts is not known here: [[profiles]] lists no apps for ${profile}.`}${typed && !Array.from($('#profile-select').options).some((o) => o.value === typed) ? ` ${profile} is not in [[profiles]]: check its spelling, it is sent as is.` : ''}`,
    ok: `Switch to ${profile}`,
  });
  if (!ok) return;
  // The typed field is for a profile only the controller knows: sent with force, since the
  // gateway refuses names outside [[profiles]] otherwise (a misspelling must not halt apps).
  const listed = Array.from($('#profile-select').options).some((o) => o.value === profile);
  const body = typed && !listed ? { profile, force: true } : { profile };
  if (await act(`Switch profile to ${profile}`, '/api/profile', body, $('#profile-apply'))) $('#profile-custom').value = '';
});

$('#profile-clear').addEventListener('click', async (e) => {
  const button = e.currentTarget;
  const ok = await confirmAction({
    title: 'Clear the local profile?',
    text: "EVE goes back to the controller's global profile: apps are halted or started to match it.",
    ok: 'Clear override',
  });
  if (ok) await act('Clear profile override', '/api/profile', { profile: '' }, button);
});

$('#profile-select').addEventListener('change', showProfileDescription);

function showProfileDescription() {
  const option = $('#profile-select').selectedOptions[0];
  $('#profile-description').textContent = (option && option.dataset.description) || '';
  showProfilePreview();
}

async function loadProfiles() {
  const select = $('#profile-select');
  try {
    const { status, body } = await api('GET', '/api/profiles', undefined, { auto: true });
    if (!Array.isArray(body)) throw new Error(body && body.error ? body.error : `HTTP ${status}`);
    select.replaceChildren(...body.map((p) => h('option', { value: p.name, dataDescription: p.description || '', dataApps: p.apps ? JSON.stringify(p.apps) : null },
      p.description ? `${p.name} — ${p.description}` : p.name)));
    profilesLoaded = true;
    loadSchedules();
    if (!body.length) select.append(h('option', { value: '', disabled: true, selected: true }, 'No [[profiles]] configured'));
    const desired = current && current.profile && current.profile.desired;
    if (desired && body.some((p) => p.name === desired)) select.value = desired;
    showProfileDescription();
  } catch (err) {
    select.replaceChildren(h('option', { value: '' }, 'Profiles unavailable'));
    // Unreachable: the gateway banner says so, and the list is fetched again on reconnect.
    if (!(err instanceof TypeError)) toast('error', `Loading the configured profiles failed: ${err.message || err}`);
  }
}

$('#network-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  let ports;
  try {
    ports = JSON.parse($('#network-ports').value);
  } catch (err) {
    toast('error', `Port overrides are not valid JSON: ${err.message}`);
    return;
  }
  // Accept the array alone or the whole {"ports":[...]} body.
  const body = Array.isArray(ports) ? { ports } : ports;
  const labels = ((body && body.ports) || []).map((p) => p && p.logical_label).filter(Boolean).join(', ') || 'the listed ports';
  const ok = await confirmAction({
    title: `Override the network config of ${labels}?`,
    text: `EVE replaces the controller's config of ${labels} with this one. A wrong address or gateway can cut the node off the network (and off this gateway) until it is reverted.`,
    ok: 'Submit override',
  });
  // Accepted: fold the form again (its text stays, to adjust and resubmit).
  if (ok && (await act('Network override', '/api/network', body, $('#network-apply')))) $('#network-override').open = false;
});

$('#network-revert').addEventListener('click', async (e) => {
  const button = e.currentTarget;
  const ok = await confirmAction({
    title: "Revert to the controller's network config?",
    text: "EVE drops every local port override and uses the controller's network config again.",
    ok: 'Revert network',
  });
  if (ok) await act('Revert network to the controller', '/api/network', { ports: [] }, button);
});

// Relative times ("12 s ago") age between updates.
setInterval(() => {
  if (!current) return;
  renderEve(current.eve || {});
}, 1000);

// ---------------------------------------------------------------------------------------------
// Start

async function start() {
  try {
    const { status, body } = await api('GET', '/api/state', undefined, { auto: true });
    if (status === 200 && body) render(body);
    else if (status === 401) setGateway('auth', 'The gateway wants an operator token to show its state.');
  } catch (_) {
    setGateway('offline', 'Cannot reach lps-bridge; reconnecting…');
  }
  await loadProfiles();
  await loadHistory();
  connectEvents();
}

start();

// Next firings move on as entries pass; a minute is their resolution.
setInterval(loadSchedules, 60_000);
