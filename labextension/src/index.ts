/**
 * workbench's JupyterLab extension.
 *
 * - `workbench-jupyterlab:dlsql-highlight` (this module, the `extension` entry point):
 *   notebook code cells whose source starts with `%%dlsql` are edited as SQL.
 * - `workbench-jupyterlab:plan-renderer` (./mime.ts, the `mimeExtension` entry point):
 *   the interactive EXPLAIN tree for `application/vnd.workbench.plan+json` outputs.
 */

import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import type { Cell } from '@jupyterlab/cells';
import { INotebookTracker, Notebook, NotebookPanel } from '@jupyterlab/notebook';

/** The editor MIME type of `%%dlsql` cells: JupyterLab's default language registry maps
 * it to CodeMirror's SQL language (@codemirror/lang-sql). */
export const DLSQL_MIME_TYPE = 'text/x-sql';

/** The class `%%dlsql` code cells get on their node. */
export const DLSQL_CELL_CLASS = 'wb-dlsql-cell';

/** `%%dlsql` as the cell magic line: after optional blank lines, then a space or the end. */
const DLSQL_MAGIC = /^(?:[ \t]*\r?\n)*%%dlsql(?:\s|$)/;

export function isDlsqlSource(source: string): boolean {
  return DLSQL_MAGIC.test(source);
}

/**
 * Keeps a notebook's `%%dlsql` cells highlighted as SQL.
 *
 * Changing `cell.model.mimeType` is all it takes: CodeMirrorEditor listens to the model's
 * `mimeTypeChanged` and reconfigures its language compartment with the language the
 * registry finds for the new MIME type. The notebook itself sets every code cell's
 * mimeType (on insertion, and for all cells when the kernel's `language_info` changes),
 * so each cell is checked again whenever its source or its mimeType changes.
 */
export class DlsqlCells {
  constructor(notebook: Notebook) {
    this._notebook = notebook;
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
    if (!this._cells.has(cell)) {
      this._cells.add(cell);
      const apply = () => this._apply(cell);
      cell.model.contentChanged.connect(apply);
      cell.model.mimeTypeChanged.connect(apply);
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

  private _notebook: Notebook;
  private _models = new WeakSet<object>();
  private _cells = new WeakSet<Cell>();
}

const dlsqlHighlight: JupyterFrontEndPlugin<void> = {
  id: 'workbench-jupyterlab:dlsql-highlight',
  description: 'SQL syntax highlighting for %%dlsql notebook cells.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (app: JupyterFrontEnd, tracker: INotebookTracker) => {
    const watch = (panel: NotebookPanel) => {
      new DlsqlCells(panel.content);
    };
    tracker.forEach(watch);
    tracker.widgetAdded.connect((_, panel) => watch(panel));
  }
};

export default [dlsqlHighlight];
