/**
 * The interactive EXPLAIN tree of a workbench plan.
 *
 * Renders the `application/vnd.workbench.plan+json` output of `Session.explain` /
 * `EXPLAIN [ANALYZE]` (the `Plan.to_dict()` JSON) as a collapsible tree. The DOM is
 * built with `textContent` only (never HTML strings), so untrusted outputs are safe.
 *
 * DOM contract (browser tests rely on it):
 *   div.wb-plan-tree                          the tree, inside the renderer widget
 *   div.wb-node[data-operator]                one per plan node; model operators also
 *                                             carry data-paradigm and an inline colour
 *   .wb-node-header                           operator, rows and time (est. / actual)
 *   button.wb-toggle                          collapses .wb-children (node: .wb-collapsed)
 *   .wb-node-details                          shown / hidden by a click on the header
 *   .wb-alternatives                          per-paradigm estimates (tr.wb-chosen), with
 *                                             'dl_centric on ray' when a cluster is set
 *   .wb-placement                             placement ray: 'dl_centric on ray (N actors on M nodes)'
 *   .wb-runtime                               in a model operator's header: its runtime and
 *                                             precision (e.g. "onnx int8")
 *   .wb-runtimes                              per-runtime estimates (tr.wb-chosen)
 *   .wb-misestimate                           estimate and actual differ by more than 2x
 *   .wb-plan-notes                            what the optimizer rules did
 *
 * When the plan holds DuckDB's operator tree (`relational`), that tree is the tree:
 *   div.wb-node.wb-rel-node[data-operator]    a DuckDB operator (data-operator: its name, e.g.
 *                                             HASH_JOIN); its model operators (div.wb-node
 *                                             [data-operator=ModelOperator]) among its children
 *   .wb-rel-detail                            table, filter, join condition, group keys
 *   .wb-bar > .wb-bar-fill, .wb-share         ANALYZE: the node's share of the time
 *   div.wb-node.wb-hottest                    ANALYZE: the node that took the most time
 *   .wb-rel-timing                            in the details: DuckDB's time and rows for it
 */

import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

// The plan's types, MIME type and paradigm colours come from the plan's JSON Schema
// (workbench/plan/plan.schema.json), through the generated ./schema.
import {
  PARADIGMS,
  PARADIGM_COLOURS,
  PLAN_MIME_TYPE,
  type IPlan,
  type IRelationalNode,
  type IRelationalPlan,
  type PlanNode
} from './schema';

export { PARADIGM_COLOURS, PLAN_MIME_TYPE };

/** A paradigm's colour, for any string (undefined: not a known paradigm). */
const COLOURS: { readonly [paradigm: string]: string | undefined } = PARADIGM_COLOURS;

/** Estimated and actual values further apart than this factor mark a misestimate. */
export const MISESTIMATE_FACTOR = 2;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/**
 * Data shaped like `T` (a type of ./schema) as it arrives: an output saved by another
 * version may lack any field, or hold null or another type in it, so each field is read
 * as any JSON value; only the schema's field names are known.
 */
type Received<T> = { [K in T extends unknown ? keyof T : never]?: Json };

/** A node of `data.root`. Any field may be missing or null. */
type IPlanNode = Received<PlanNode>;

/** The field names of the nodes of the plan tree. */
type PlanNodeKey = keyof IPlanNode;

/** Fields a node's header or details show in their own way; the rest are listed generically. */
const SHOWN_KEYS: ReadonlySet<string> = new Set<PlanNodeKey>([
  'operator',
  'children',
  'id',
  'model',
  'call',
  'paradigm',
  'placement',
  'forced',
  'alternatives',
  'estimated_seconds',
  'actual_seconds',
  'estimated_rows',
  'actual_rows',
  'reason',
  'batch_size',
  'device',
  'precision',
  'runtime',
  'runtime_alternatives',
  'runtime_reason',
  'threads',
  'cache',
  'expected_hit_ratio',
  'actual_cache_hits',
  'actual_cache_hit_ratio',
  'estimate_error',
  'sql'
]);

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function num(value: unknown): number | null {
  return typeof value === 'number' && isFinite(value) ? value : null;
}

function str(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

/** Three significant digits, without exponent notation for ordinary magnitudes. */
function sig3(x: number): string {
  return String(Number(x.toPrecision(3)));
}

/** Seconds as the Python side writes them: `45.2 ms`, `1.5 s`. */
export function formatSeconds(x: number | null): string {
  if (x === null) {
    return 'n/a';
  }
  return x < 1 ? `${sig3(x * 1000)} ms` : `${sig3(x)} s`;
}

export function formatRows(x: number | null): string {
  if (x === null) {
    return 'n/a';
  }
  return Math.round(x).toLocaleString('en-US');
}

function formatRatio(x: number | null): string {
  return x === null ? 'n/a' : `${Math.round(x * 100)}%`;
}

/** The factor between an estimate and an actual value (>= 1), or null if either is unknown. */
export function misestimateFactor(
  estimated: number | null,
  actual: number | null,
  floor: number
): number | null {
  if (estimated === null || actual === null) {
    return null;
  }
  const e = Math.max(estimated, floor);
  const a = Math.max(actual, floor);
  return Math.max(e, a) / Math.min(e, a);
}

/** `#RRGGBB` with an alpha, as `rgba(...)` (a tint that works on light and dark themes). */
function tint(hex: string, alpha: number): string {
  const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (!m) {
    return hex;
  }
  const [r, g, b] = [m[1], m[2], m[3]].map(h => parseInt(h, 16));
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function humanize(key: string): string {
  return key.replace(/_/g, ' ');
}

/** Any JSON value as DOM: scalars as text, lists joined, objects as nested lists. */
function renderValue(value: Json | undefined, depth = 0): HTMLElement {
  if (value === null || value === undefined) {
    return el('span', 'wb-value wb-null', '—');
  }
  if (typeof value === 'boolean') {
    return el('span', 'wb-value', value ? 'yes' : 'no');
  }
  if (typeof value === 'number') {
    return el('span', 'wb-value', Number.isInteger(value) ? formatRows(value) : sig3(value));
  }
  if (typeof value === 'string') {
    return el('span', 'wb-value', value);
  }
  if (Array.isArray(value)) {
    if (value.every(v => !isObject(v) && !Array.isArray(v))) {
      return el(
        'span',
        'wb-value',
        value.length ? value.map(v => renderValue(v, depth + 1).textContent).join(', ') : '—'
      );
    }
    const list = el('ol', 'wb-value wb-list');
    for (const item of value) {
      const li = el('li');
      li.appendChild(renderValue(item, depth + 1));
      list.appendChild(li);
    }
    return list;
  }
  if (depth > 4) {
    return el('span', 'wb-value', JSON.stringify(value));
  }
  const dl = el('dl', 'wb-value wb-props wb-nested');
  for (const [key, item] of Object.entries(value)) {
    addProp(dl, key, renderValue(item, depth + 1));
  }
  return dl;
}

function addProp(dl: HTMLElement, key: string, value: HTMLElement | string, label?: string): void {
  const dt = el('dt', 'wb-prop-key', label ?? humanize(key));
  const dd = el('dd', 'wb-prop-value');
  dt.dataset.key = key;
  dd.dataset.key = key;
  if (typeof value === 'string') {
    dd.textContent = value;
  } else {
    dd.appendChild(value);
  }
  dl.append(dt, dd);
}

/** `est. X / actual Y` for one metric. */
function estimateActual(
  label: string,
  className: string,
  estimated: number | null,
  actual: number | null,
  format: (x: number | null) => string
): HTMLElement | null {
  if (estimated === null && actual === null) {
    return null;
  }
  const span = el('span', `wb-metric ${className}`);
  span.appendChild(el('span', 'wb-metric-label', label));
  if (estimated !== null) {
    span.appendChild(el('span', 'wb-estimated', `est. ${format(estimated)}`));
  }
  if (actual !== null) {
    span.appendChild(el('span', 'wb-actual', `actual ${format(actual)}`));
  }
  return span;
}

/** Where a model operator runs, when not on this machine: its placement's text (else null). */
function placementText(node: IPlanNode): string | null {
  return isObject(node.placement) ? str(node.placement.text) : null;
}

/** The name of the alternative that runs: 'dl_centric on ray' when placed on a cluster. */
function chosenAlternative(node: IPlanNode): string | null {
  return isObject(node.placement) ? `${str(node.paradigm) ?? ''} on ${str(node.placement.on) ?? ''}` : str(node.paradigm);
}

/** Each runtime's estimate in the chosen paradigm (null when the model has no other runtime). */
function runtimesTable(node: IPlanNode): HTMLElement | null {
  const alternatives = isObject(node.runtime_alternatives) ? node.runtime_alternatives : {};
  const names = Object.keys(alternatives);
  if (!names.length) {
    return null;
  }
  const table = el('table', 'wb-runtimes');
  const head = el('tr');
  head.append(el('th', '', 'runtime'), el('th', '', 'estimated'), el('th', ''));
  table.createTHead().appendChild(head);
  const body = table.createTBody();
  const chosen = `${str(node.runtime) ?? ''} ${str(node.precision) ?? ''}`.trim();
  for (const name of names) {
    const cost = num(alternatives[name]);
    const row = el('tr', 'wb-alternative');
    const costCell = el('td', 'wb-alt-cost', cost === null ? 'cannot run' : formatSeconds(cost));
    const mark = el('td', 'wb-alt-mark');
    if (name === chosen) {
      row.classList.add('wb-chosen');
      mark.textContent = '✓ chosen';
    } else if (cost === null) {
      row.classList.add('wb-cannot-run');
    }
    row.append(el('td', 'wb-alt-paradigm', name), costCell, mark);
    body.appendChild(row);
  }
  return table;
}

function alternativesTable(node: IPlanNode): HTMLElement {
  const table = el('table', 'wb-alternatives');
  const head = el('tr');
  head.append(el('th', '', 'paradigm'), el('th', '', 'estimated'), el('th', ''));
  table.createTHead().appendChild(head);
  const body = table.createTBody();
  const chosen = chosenAlternative(node);
  const alternatives = isObject(node.alternatives) ? node.alternatives : {};
  // The known paradigms first, in their usual order; then any new ones.
  const known: readonly string[] = PARADIGMS;
  const order = [
    ...known.filter(p => p in alternatives),
    ...Object.keys(alternatives).filter(p => !known.includes(p))
  ];
  if (chosen !== null && !order.includes(chosen)) {
    order.push(chosen);
  }
  const costs = order.map(p => num(alternatives[p])).filter((c): c is number => c !== null);
  const cheapest = costs.length ? Math.min(...costs) : null;
  for (const paradigm of order) {
    const cost = num(alternatives[paradigm]);
    const row = el('tr', 'wb-alternative');
    row.dataset.paradigm = paradigm;
    const name = el('td', 'wb-alt-paradigm');
    const swatch = el('span', 'wb-swatch');
    // 'dl_centric on ray' wears its paradigm's colour
    swatch.style.backgroundColor = COLOURS[paradigm.split(' ')[0]] ?? 'var(--jp-border-color1)';
    name.append(swatch, document.createTextNode(paradigm));
    const costCell = el('td', 'wb-alt-cost');
    if (cost === null && paradigm in alternatives) {
      costCell.textContent = 'cannot run';
      row.classList.add('wb-cannot-run');
    } else {
      costCell.textContent = formatSeconds(cost);
    }
    const mark = el('td', 'wb-alt-mark');
    if (paradigm === chosen) {
      row.classList.add('wb-chosen');
      mark.textContent = node.forced === true ? '✓ chosen (forced)' : '✓ chosen';
    } else if (cost !== null && cheapest !== null && cheapest > 0 && cost > cheapest) {
      mark.textContent = `${sig3(cost / cheapest)}x the cheapest`;
    }
    row.append(name, costCell, mark);
    body.appendChild(row);
  }
  return table;
}

function cacheText(node: IPlanNode): string | null {
  const policy = str(node.cache);
  if (policy === null) {
    return null;
  }
  if (policy === 'off') {
    return 'off';
  }
  const parts = [policy];
  const expected = num(node.expected_hit_ratio);
  if (expected !== null) {
    parts.push(`expected hits ${formatRatio(expected)}`);
  }
  let actual = num(node.actual_cache_hit_ratio);
  const hits = num(node.actual_cache_hits);
  const rows = num(node.actual_rows);
  if (actual === null && hits !== null && rows) {
    actual = hits / rows;
  }
  if (actual !== null) {
    parts.push(`actual hits ${formatRatio(actual)}` + (hits !== null ? ` (${formatRows(hits)})` : ''));
  }
  return parts.join(', ');
}

function threadsText(value: Json | undefined): string | null {
  if (!isObject(value)) {
    return null;
  }
  return Object.entries(value)
    .map(([k, v]) => `${k === 'duckdb' ? 'DuckDB' : k} ${v === null ? '—' : String(v)}`)
    .join(' · ');
}

function renderDetails(node: IPlanNode, isModel: boolean): HTMLElement {
  const details = el('div', 'wb-node-details');
  details.hidden = true;
  if (isModel) {
    details.appendChild(alternativesTable(node));
    const runtimes = runtimesTable(node);
    if (runtimes !== null) {
      details.appendChild(runtimes);
    }
  }
  const dl = el('dl', 'wb-props');
  const reason = str(node.reason);
  if (reason) {
    addProp(dl, 'reason', reason);
  }
  if (isModel) {
    if (node.model !== undefined) {
      addProp(dl, 'model', renderValue(node.model));
    }
    if ('batch_size' in node) {
      const batch = num(node.batch_size);
      addProp(dl, 'batch_size', batch === null ? 'tuned at run time' : formatRows(batch));
    }
    const runtimeReason = str(node.runtime_reason);
    if (runtimeReason) {
      addProp(dl, 'runtime', runtimeReason);
    }
    for (const key of ['device', 'precision'] as const) {
      if (key in node) {
        addProp(dl, key, renderValue(node[key]));
      }
    }
    const threads = threadsText(node.threads);
    if (threads !== null) {
      addProp(dl, 'threads', threads);
    }
    const cache = cacheText(node);
    if (cache !== null) {
      addProp(dl, 'cache', cache);
    }
  }
  const error = num(node.estimate_error);
  if (error !== null) {
    // (estimated - actual) / actual seconds, from the Python side.
    const pct = Math.round(error * 100);
    addProp(dl, 'estimate_error', `${pct > 0 ? '+' : ''}${pct}% (estimated vs actual time)`);
  }
  for (const [key, value] of Object.entries(node)) {
    if (!SHOWN_KEYS.has(key) && value !== null) {
      addProp(dl, key, renderValue(value));
    }
  }
  if (dl.childElementCount) {
    details.appendChild(dl);
  }
  const sql = str(node.sql);
  if (sql) {
    details.appendChild(el('pre', 'wb-sql', sql));
  }
  return details;
}

/** A click on the header shows the details; its toggle collapses the children. */
function wire(
  div: HTMLElement,
  header: HTMLElement,
  details: HTMLElement,
  childBox: HTMLElement | null
): void {
  const toggleDetails = () => {
    details.hidden = !details.hidden;
    div.classList.toggle('wb-details-open', !details.hidden);
    header.setAttribute('aria-expanded', String(!details.hidden));
  };
  header.addEventListener('click', event => {
    const target = event.target as HTMLElement;
    if (target.closest('.wb-toggle')) {
      const collapsed = div.classList.toggle('wb-collapsed');
      if (childBox) {
        childBox.hidden = collapsed;
      }
      target.closest('.wb-toggle')!.setAttribute('aria-label', collapsed ? 'Expand' : 'Collapse');
      return;
    }
    // Selecting text in the header (to copy SQL) is not a click.
    const selection = window.getSelection();
    if (selection && !selection.isCollapsed && header.contains(selection.anchorNode)) {
      return;
    }
    toggleDetails();
  });
  header.addEventListener('keydown', event => {
    if ((event.key === 'Enter' || event.key === ' ') && event.target === header) {
      event.preventDefault();
      toggleDetails();
    }
  });
}

/** One node (and, recursively, its children). */
export function renderNode(node: IPlanNode): HTMLElement {
  const operator = str(node.operator) ?? 'node';
  const isModel = operator === 'ModelOperator';
  const paradigm = str(node.paradigm);
  const children = Array.isArray(node.children) ? node.children.filter(isObject) : [];

  const div = el('div', 'wb-node');
  div.dataset.operator = operator;
  div.setAttribute('role', 'treeitem');
  const header = el('div', 'wb-node-header');
  header.tabIndex = 0;
  header.setAttribute('aria-expanded', 'false');

  if (children.length) {
    const toggle = el('button', 'wb-toggle', '▾');
    toggle.type = 'button';
    toggle.title = 'Collapse or expand the inputs of this node';
    toggle.setAttribute('aria-label', 'Collapse');
    header.appendChild(toggle);
  } else {
    header.appendChild(el('span', 'wb-toggle-spacer'));
  }

  if (isModel) {
    header.appendChild(el('span', 'wb-op wb-call', str(node.call) ?? str(node.model) ?? operator));
    if (paradigm !== null) {
      div.dataset.paradigm = paradigm;
      const color = COLOURS[paradigm];
      const chip = el('span', 'wb-paradigm', paradigm);
      if (color) {
        div.style.borderLeftColor = color;
        header.style.backgroundColor = tint(color, 0.16);
        chip.style.backgroundColor = color;
      }
      header.appendChild(chip);
    }
    const placed = placementText(node);
    if (placed !== null) {
      header.appendChild(el('span', 'wb-placement', placed));
    }
    if (node.forced === true) {
      header.appendChild(el('span', 'wb-forced', '(forced)'));
    }
    const runtime = str(node.runtime);
    if (runtime !== null) {
      header.appendChild(el('span', 'wb-runtime', `${runtime} ${str(node.precision) ?? ''}`.trim()));
    }
    const reason = str(node.reason);
    if (reason) {
      header.title = reason;
    }
  } else {
    header.appendChild(el('span', 'wb-op', operator));
    const sql = str(node.sql);
    if (sql) {
      header.appendChild(el('code', 'wb-sql-preview', sql));
      header.title = sql;
    }
  }

  const estRows = num(node.estimated_rows);
  const actRows = num(node.actual_rows);
  const estSeconds = num(node.estimated_seconds);
  const actSeconds = num(node.actual_seconds);
  const rows = estimateActual('rows', 'wb-rows', estRows, actRows, formatRows);
  const time = estimateActual('time', 'wb-time', estSeconds, actSeconds, formatSeconds);
  const metrics = el('span', 'wb-metrics');
  for (const m of [rows, time]) {
    if (m) {
      metrics.appendChild(m);
    }
  }

  const checks: [string, number | null, string][] = [
    [
      'rows',
      misestimateFactor(estRows, actRows, 1),
      `rows: estimated ${formatRows(estRows)}, actual ${formatRows(actRows)}`
    ],
    [
      'time',
      misestimateFactor(estSeconds, actSeconds, 1e-6),
      `time: estimated ${formatSeconds(estSeconds)}, actual ${formatSeconds(actSeconds)}`
    ]
  ];
  for (const [metric, factor, text] of checks) {
    if (factor !== null && factor > MISESTIMATE_FACTOR) {
      div.classList.add('wb-misestimate');
      const badge = el(
        'span',
        'wb-badge wb-misestimate-badge',
        `${metric} est. vs actual ${factor >= 100 ? Math.round(factor) : factor.toFixed(1)}x`
      );
      badge.dataset.metric = metric;
      badge.title = text;
      metrics.appendChild(badge);
    }
  }
  if (metrics.childElementCount) {
    header.appendChild(metrics);
  }

  const details = renderDetails(node, isModel);
  div.append(header, details);

  let childBox: HTMLElement | null = null;
  if (children.length) {
    childBox = el('div', 'wb-children');
    childBox.setAttribute('role', 'group');
    for (const child of children) {
      childBox.appendChild(renderNode(child));
    }
    div.appendChild(childBox);
  }

  wire(div, header, details, childBox);
  return div;
}

type IRelNode = Received<IRelationalNode>;

/** The model operator nodes of `data.root`, by id (each with its nested calls and Inputs). */
function modelNodes(root: JsonObject): Map<number, IPlanNode> {
  const found = new Map<number, IPlanNode>();
  const visit = (node: JsonObject) => {
    const id = num(node.id);
    if (str(node.operator) === 'ModelOperator' && id !== null && !found.has(id)) {
      found.set(id, node);
    }
    for (const child of Array.isArray(node.children) ? node.children.filter(isObject) : []) {
      visit(child);
    }
  };
  visit(root);
  return found;
}

/** A bar of a node's share of the time, and the share in per cent. */
function shareBar(share: number | null, hottest: boolean): HTMLElement | null {
  if (share === null) {
    return null;
  }
  const box = el('span', 'wb-share-box');
  const bar = el('span', 'wb-bar');
  const fill = el('span', 'wb-bar-fill' + (hottest ? ' wb-bar-hot' : ''));
  fill.style.width = `${Math.max(0, Math.min(100, share * 100)).toFixed(1)}%`;
  bar.appendChild(fill);
  box.append(bar, el('span', 'wb-share', `${Math.round(share * 100)}%`));
  if (hottest) {
    box.appendChild(el('span', 'wb-badge wb-hottest-badge', 'hottest'));
  }
  return box;
}

/** A DuckDB operator (and, recursively, its children and the model operators under it). */
export function renderRelationalNode(
  node: IRelNode,
  models: Map<number, IPlanNode>,
  relational: Received<IRelationalPlan>
): HTMLElement {
  const name = str(node.name) ?? 'operator';
  const children = Array.isArray(node.children) ? node.children.filter(isObject) : [];
  const modelIds = Array.isArray(node.models)
    ? node.models.map(num).filter((i): i is number => i !== null)
    : [];
  const div = el('div', 'wb-node wb-rel-node');
  div.dataset.operator = name;
  div.setAttribute('role', 'treeitem');
  const header = el('div', 'wb-node-header');
  header.tabIndex = 0;
  header.setAttribute('aria-expanded', 'false');
  if (children.length || modelIds.length) {
    const toggle = el('button', 'wb-toggle', '▾');
    toggle.type = 'button';
    toggle.title = 'Collapse or expand the inputs of this node';
    toggle.setAttribute('aria-label', 'Collapse');
    header.appendChild(toggle);
  } else {
    header.appendChild(el('span', 'wb-toggle-spacer'));
  }
  header.appendChild(el('span', 'wb-op', name));
  const detail = str(node.detail);
  if (detail) {
    header.appendChild(el('code', 'wb-rel-detail', detail));
  }
  const estRows = num(node.estimated_rows);
  const actRows = num(node.actual_rows);
  const seconds = num(node.seconds);
  const metrics = el('span', 'wb-metrics');
  for (const m of [
    estimateActual('rows', 'wb-rows', estRows, actRows, formatRows),
    estimateActual('time', 'wb-time', null, seconds, formatSeconds)
  ]) {
    if (m) {
      metrics.appendChild(m);
    }
  }
  const factor = misestimateFactor(estRows, actRows, 1);
  if (factor !== null && factor > MISESTIMATE_FACTOR) {
    div.classList.add('wb-misestimate');
    const badge = el(
      'span',
      'wb-badge wb-misestimate-badge',
      `rows est. vs actual ${factor >= 100 ? Math.round(factor) : factor.toFixed(1)}x`
    );
    badge.dataset.metric = 'rows';
    badge.title = `rows: estimated ${formatRows(estRows)}, actual ${formatRows(actRows)}`;
    metrics.appendChild(badge);
  }
  const hottest = node.hottest === true;
  const bar = shareBar(num(node.share), hottest);
  if (bar) {
    metrics.appendChild(bar);
  }
  if (hottest) {
    div.classList.add('wb-hottest');
  }
  header.appendChild(metrics);

  // The details: DuckDB's timing and rows for the node, then all its details.
  const details = el('div', 'wb-node-details');
  details.hidden = true;
  const timing = el('dl', 'wb-props wb-rel-timing');
  if (seconds !== null) {
    addProp(timing, 'seconds', formatSeconds(seconds), 'DuckDB time');
    const share = num(node.share);
    if (share !== null) {
      addProp(timing, 'share', `${sig3(share * 100)}% of the query`, 'share of time');
    }
  }
  addProp(timing, 'estimated_rows', formatRows(estRows), 'estimated rows');
  if (actRows !== null) {
    addProp(timing, 'actual_rows', formatRows(actRows), 'actual rows');
  }
  details.appendChild(timing);
  const info = isObject(node.extra_info) ? node.extra_info : {};
  if (Object.keys(info).length) {
    const dl = el('dl', 'wb-props wb-rel-info');
    for (const [key, value] of Object.entries(info)) {
      addProp(dl, key, renderValue(value), key);
    }
    details.appendChild(dl);
  }
  div.append(header, details);

  let childBox: HTMLElement | null = null;
  if (children.length || modelIds.length) {
    childBox = el('div', 'wb-children');
    childBox.setAttribute('role', 'group');
    const shares = isObject(relational.model_shares) ? relational.model_shares : {};
    for (const id of modelIds) {
      const model = models.get(id);
      if (!model) {
        continue;
      }
      const modelDiv = renderNode(model);
      const hot = num(relational.hottest_model) === id;
      const modelBar = shareBar(num(shares[String(id)]), hot);
      const modelMetrics = modelDiv.querySelector(':scope > .wb-node-header');
      if (modelBar && modelMetrics) {
        modelMetrics.appendChild(modelBar);
      }
      if (hot) {
        modelDiv.classList.add('wb-hottest');
      }
      childBox.appendChild(modelDiv);
    }
    for (const child of children) {
      childBox.appendChild(renderRelationalNode(child, models, relational));
    }
    div.appendChild(childBox);
  }
  wire(div, header, details, childBox);
  return div;
}

/** DuckDB's operator tree with the model operators where their outputs enter it. */
function renderRelational(relational: Received<IRelationalPlan>, root: Json | undefined): HTMLElement {
  const models = isObject(root) ? modelNodes(root) : new Map<number, IPlanNode>();
  return renderRelationalNode(relational.root as IRelNode, models, relational);
}

/** The whole output: title, tree, notes. */
export function renderPlan(data: unknown): HTMLElement {
  const box = el('div', 'wb-plan');
  const plan: Received<IPlan> = isObject(data) ? data : {};
  if (!isObject(plan.root)) {
    box.appendChild(el('div', 'wb-plan-error', 'workbench: this plan has no tree to show.'));
    return box;
  }
  const title = el('div', 'wb-plan-title');
  title.appendChild(el('span', 'wb-plan-kind', plan.analyzed === true ? 'EXPLAIN ANALYZE' : 'EXPLAIN'));
  const sql = str(plan.sql);
  if (sql) {
    title.appendChild(el('code', 'wb-sql-preview', sql));
    title.title = sql;
  }
  box.appendChild(title);

  const tree = el('div', 'wb-plan-tree');
  tree.setAttribute('role', 'tree');
  const relational = isObject(plan.relational) ? (plan.relational as Received<IRelationalPlan>) : null;
  if (relational && isObject(relational.root)) {
    tree.classList.add('wb-relational');
    tree.appendChild(renderRelational(relational, plan.root));
  } else {
    tree.appendChild(renderNode(plan.root));
  }
  box.appendChild(tree);

  const notes = Array.isArray(plan.notes) ? plan.notes : [];
  if (notes.length) {
    const section = el('div', 'wb-plan-notes');
    section.appendChild(el('div', 'wb-plan-notes-title', 'Optimizer notes'));
    const list = el('ul');
    for (const note of notes) {
      list.appendChild(el('li', 'wb-note', typeof note === 'string' ? note : JSON.stringify(note)));
    }
    section.appendChild(list);
    box.appendChild(section);
  }
  return box;
}

/** The renderer widget for one output. */
export class PlanRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(options: IRenderMime.IRendererOptions) {
    super();
    this._mimeType = options.mimeType;
    this.addClass('wb-plan-output');
  }

  renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const data = model.data[this._mimeType];
    this.node.replaceChildren(renderPlan(data));
    return Promise.resolve();
  }

  private _mimeType: string;
}

export const rendererFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [PLAN_MIME_TYPE],
  defaultRank: 0,
  createRenderer: options => new PlanRenderer(options)
};
