/**
 * workbench's JupyterLab extension.
 *
 * - `workbench-jupyterlab:dlsql-highlight` (this module, the `extension` entry point):
 *   notebook code cells whose source starts with `%%dlsql` are edited as SQL.
 * - `workbench-jupyterlab:plan-renderer` (./mime.ts, the `mimeExtension` entry point):
 *   the interactive EXPLAIN tree for `application/vnd.workbench.plan+json` outputs.
 */

import { language as languageFacet } from '@codemirror/language';
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import type { Cell } from '@jupyterlab/cells';
import { IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import type { CodeMirrorEditor } from '@jupyterlab/codemirror';
import { INotebookTracker, Notebook, NotebookPanel } from '@jupyterlab/notebook';

/** The editor MIME type of `%%dlsql` cells: JupyterLab's default language registry maps
 * it to CodeMirror's SQL language (@codemirror/lang-sql). */
export const DLSQL_MIME_TYPE = 'text/x-sql';

/** The class `%%dlsql` code cells get on their node. */
export const DLSQL_CELL_CLASS = 'wb-dlsql-cell';

/** `%%dlsql` as the cell magic line: after optional blank lines, then a space or the end. */
const DLSQL_MAGIC = /^(?:[ \t]*\r?\n)*%%dlsql(?:\s|$)/;

/** The MIME type of JupyterLab's plain-text language (registered already loaded). */
const PLAIN_MIME_TYPE = 'text/plain';

/** How many times in a row a cell's editor is re-synced with its model's language. */
const MAX_RESYNCS = 3;

export function isDlsqlSource(source: string): boolean {
  return DLSQL_MAGIC.test(source);
}

/** What DlsqlCells keeps for each code cell it watches. */
interface ICellState {
  /** The MIME types the cell's model had since its editor was last checked: the editor
   * may still be loading the language of any of them. */
  pending: Set<string>;
  /** Bumped by every check scheduled; an older check that sees it changed gives way. */
  generation: number;
  /** Re-syncs of the editor since the model's mimeType last changed (bounds the loop). */
  resyncs: number;
  /** Set while this class re-syncs the editor: those mimeType changes are its own. */
  resyncing: boolean;
}

/**
 * Keeps a notebook's `%%dlsql` cells highlighted as SQL.
 *
 * A `%%dlsql` code cell gets `cell.model.mimeType = 'text/x-sql'`; the notebook sets every
 * code cell's mimeType (on insertion, and for all cells when the kernel's `language_info`
 * changes), so each cell is checked again whenever its source or its mimeType changes.
 *
 * Setting the model's mimeType is not enough on its own: CodeMirrorEditor reacts to
 * `mimeTypeChanged` by loading the language asynchronously (`getLanguage(...).then(...)`)
 * and applies each one when its load finishes, without checking that it is still the
 * model's. When the notebook sets the kernel's Python MIME type and this class sets SQL
 * right after, inside the same signal, SQL (loaded already) lands first and Python (first
 * use of that language entry, a lazy import) lands after it: the editor stays Python while
 * the model says SQL, and nothing changes the mimeType again. So after every mimeType
 * change (and once the cell's editor exists), once every language the editor may still be
 * loading has loaded, the editor's language is compared with the model's, and the editor
 * is re-synced through the model when they differ.
 */
export class DlsqlCells {
  constructor(notebook: Notebook, languages: IEditorLanguageRegistry) {
    this._notebook = notebook;
    this._languages = languages;
    notebook.modelChanged.connect(this._onModelChanged, this);
    this._onModelChanged();
  }

  /** Check every cell of the notebook (wiring the ones not seen yet). */
  refresh(): void {
    for (const cell of this._notebook.widgets) {
      this._wire(cell);
    }
  }

  private _onModelChanged(): void {
    const model = this._notebook.model;
    if (model && !this._models.has(model)) {
      this._models.add(model);
      // Connected after the notebook's own handler, so the cell widgets exist by now.
      model.cells.changed.connect(this.refresh, this);
    }
    this.refresh();
  }

  private _wire(cell: Cell): void {
    if (cell.model.type !== 'code') {
      return;
    }
    if (!this._states.has(cell)) {
      const model = cell.model;
      const state: ICellState = {
        pending: new Set([model.mimeType]),
        generation: 0,
        resyncs: 0,
        resyncing: false
      };
      this._states.set(cell, state);
      const onContent = () => this._apply(cell);
      const onMimeType = (_: unknown, change: { newValue: unknown }) => {
        if (state.resyncing) {
          return;
        }
        if (typeof change.newValue === 'string') {
          state.pending.add(change.newValue);
        }
        state.resyncs = 0;
        this._apply(cell);
        this._scheduleCheck(cell);
      };
      model.contentChanged.connect(onContent);
      model.mimeTypeChanged.connect(onMimeType);
      cell.disposed.connect(() => {
        model.contentChanged.disconnect(onContent);
        model.mimeTypeChanged.disconnect(onMimeType);
        this._states.delete(cell);
      });
      // With a lazy windowing mode the editor is only created when the cell is rendered
      // (from the model's mimeType at that time): check it then too.
      void cell.ready.then(() => this._scheduleCheck(cell));
      this._scheduleCheck(cell);
    }
    this._apply(cell);
  }

  private _apply(cell: Cell): void {
    if (cell.isDisposed || cell.model.isDisposed) {
      return;
    }
    const dlsql = isDlsqlSource(cell.model.sharedModel.getSource());
    cell.toggleClass(DLSQL_CELL_CLASS, dlsql);
    const model = cell.model;
    if (dlsql) {
      if (model.mimeType !== DLSQL_MIME_TYPE) {
        model.mimeType = DLSQL_MIME_TYPE;
      }
    } else {
      // Back to the notebook's language (the kernel's) once the magic is gone; a
      // mimeType some other extension chose is left alone.
      const fallback = this._notebook.codeMimetype;
      if (model.mimeType === DLSQL_MIME_TYPE && fallback !== DLSQL_MIME_TYPE) {
        model.mimeType = fallback;
      }
    }
  }

  /** Check, once the pending language loads are over, that the cell's editor shows the
   * language of its model's mimeType; the latest check scheduled for a cell wins. */
  private _scheduleCheck(cell: Cell): void {
    const state = this._states.get(cell);
    if (!state) {
      return;
    }
    const generation = ++state.generation;
    this._check(cell, state, generation).catch(reason => {
      console.warn('workbench: could not check the language of a %%dlsql cell', reason);
    });
  }

  private async _check(cell: Cell, state: ICellState, generation: number): Promise<void> {
    const live = () =>
      generation === state.generation && !cell.isDisposed && !cell.model.isDisposed;
    // Every language the editor may still be loading (the same lazy imports it waits on),
    // then a task later, so that the editor's own callbacks on those loads have run.
    await Promise.allSettled([...state.pending].map(m => this._languages.getLanguage(m)));
    await new Promise<void>(resolve => setTimeout(resolve, 0));
    if (!live()) {
      return;
    }
    const view = (cell.editor as CodeMirrorEditor | null)?.editor;
    if (!view) {
      return; // not rendered yet: `cell.ready` schedules a check
    }
    const mimeType = cell.model.mimeType;
    // The language the editor gives this MIME type (same lookup, loaded by now).
    const wanted = (await this._languages.getLanguage(mimeType))?.support?.language ?? null;
    const detour = mimeType === PLAIN_MIME_TYPE ? DLSQL_MIME_TYPE : PLAIN_MIME_TYPE;
    await this._languages.getLanguage(detour);
    if (!live() || cell.model.mimeType !== mimeType) {
      return;
    }
    state.pending = new Set([mimeType]);
    if (view.state.facet(languageFacet) === wanted) {
      return;
    }
    if (state.resyncs >= MAX_RESYNCS) {
      console.warn(`workbench: the editor of a cell does not show the language of '${mimeType}'`);
      return;
    }
    state.resyncs++;
    // Re-sync: the editor (re)applies its model's language on `mimeTypeChanged` only, so
    // the mimeType takes a detour through a language that is loaded already and back;
    // both loads are done, so they land in order and the model's language lands last.
    state.resyncing = true;
    try {
      cell.model.mimeType = detour;
      cell.model.mimeType = mimeType;
    } finally {
      state.resyncing = false;
    }
    state.pending.add(detour);
    this._scheduleCheck(cell);
  }

  private _notebook: Notebook;
  private _languages: IEditorLanguageRegistry;
  private _models = new WeakSet<object>();
  private _states = new WeakMap<Cell, ICellState>();
}

const dlsqlHighlight: JupyterFrontEndPlugin<void> = {
  id: 'workbench-jupyterlab:dlsql-highlight',
  description: 'SQL syntax highlighting for %%dlsql notebook cells.',
  autoStart: true,
  requires: [INotebookTracker, IEditorLanguageRegistry],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    languages: IEditorLanguageRegistry
  ) => {
    const watch = (panel: NotebookPanel) => {
      new DlsqlCells(panel.content, languages);
    };
    tracker.forEach(watch);
    tracker.widgetAdded.connect((_, panel) => watch(panel));
  }
};

export default [dlsqlHighlight];
