/** Pieces every page uses: loading data, errors, state badges, times, labels, the schema form. */
import { Fragment, type ComponentChildren, type JSX } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api.ts';
import { paramsOf, type Field, type FormValue } from './schema-form.ts';

export interface Loaded<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
  reload: () => void;
}

/**
 * Runs `load` now and whenever `deps` change or reload() is called.
 * `first`: the answer already here for the first render (a prefetched one), which then loads nothing.
 * One read at a time for the same deps: a reload asked for while one runs is done once, after it,
 * so every answer is shown and a slow server or link never gets a pile of requests (a page whose
 * events keep coming used to drop each answer for the next one and show nothing new). When the deps
 * change, the answers of reads for the old ones are dropped.
 */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[], first?: () => T | undefined): Loaded<T> {
  const [data, setData] = useState<T | null>(() => first?.() ?? null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(data === null);
  const latest = useRef(load);
  latest.current = load;
  const reads = useRef({ gen: 0, running: false, again: false });
  const read = useCallback((gen: number): void => {
    const r = reads.current;
    if (r.gen < 0) return;
    r.running = true;
    r.again = false;
    setLoading(true);
    const settle = (apply: () => void): void => {
      if (gen !== r.gen) return;
      apply();
      r.running = false;
      if (r.again) read(gen);
      else setLoading(false);
    };
    // A load that throws at once is a failed read like any other (api() also gives up on a request
    // without an answer: a read always settles).
    new Promise<T>((resolve) => resolve(latest.current())).then(
      (d) =>
        settle(() => {
          setData(d);
          setError(null);
        }),
      (e: unknown) => settle(() => setError(e instanceof Error ? e.message : String(e))),
    );
  }, []);
  const had = useRef(data !== null);
  useEffect(() => {
    // New deps: a read for the old ones is orphaned, its answer dropped.
    const r = reads.current;
    const gen = ++r.gen;
    r.running = false;
    r.again = false;
    if (had.current) {
      had.current = false;
      return;
    }
    read(gen);
  }, deps);
  // Gone: nothing more is read for it.
  useEffect(
    () => () => {
      reads.current.gen = -1;
    },
    [],
  );
  const reload = useCallback(() => {
    const r = reads.current;
    if (r.gen < 0) return;
    if (r.running) r.again = true;
    else read(r.gen);
  }, [read]);
  return { data, error, loading, reload };
}

/** Runs an action from a button: busy while it runs, its error kept for display. */
export function useAction(): { busy: boolean; error: string | null; run: (fn: () => Promise<unknown>) => Promise<boolean>; clear: () => void } {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const run = async (fn: () => Promise<unknown>): Promise<boolean> => {
    setBusy(true);
    setError(null);
    try {
      await fn();
      return true;
    } catch (e) {
      setError(e instanceof ApiError || e instanceof Error ? e.message : String(e));
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run, clear: () => setError(null) };
}

export function ErrorBox(props: { error: string | null; testid?: string }): JSX.Element | null {
  if (props.error === null) return null;
  return (
    <div class="error" role="alert" data-testid={props.testid ?? 'error'}>
      {props.error}
    </div>
  );
}

export function Loading(props: { what?: string }): JSX.Element {
  return (
    <p class="muted" role="status">
      Loading{props.what ? ` ${props.what}` : ''}…
    </p>
  );
}

/** An agent's or a job's state as a coloured word (the word carries the meaning, not the colour). */
export function Badge(props: { state: string | undefined | null }): JSX.Element {
  const s = props.state ?? 'unknown';
  return <span class={`badge badge-${s.replace(/[^a-z-]/g, '')}`}>{s}</span>;
}

/** A time as the browser's locale shows it, the exact ISO time in the title. */
export function Time(props: { at: string | null | undefined }): JSX.Element {
  if (!props.at) return <span class="muted">never</span>;
  const d = new Date(props.at);
  return (
    <time dateTime={props.at} title={props.at}>
      {d.toLocaleString()}
    </time>
  );
}

export function Labels(props: { labels: Record<string, string> | undefined }): JSX.Element {
  const entries = Object.entries(props.labels ?? {});
  if (entries.length === 0) return <span class="muted">none</span>;
  return (
    <ul class="labels">
      {entries.map(([k, v]) => (
        <li key={k} class="label">
          {k}={v}
        </li>
      ))}
    </ul>
  );
}

/** JSON shown as preformatted text (results, parameters). */
export function Json(props: { value: unknown; testid?: string }): JSX.Element {
  return (
    <pre class="json" data-testid={props.testid}>
      {JSON.stringify(props.value, null, 2)}
    </pre>
  );
}

export function Section(props: { title: string; children: ComponentChildren; actions?: ComponentChildren; id?: string; level?: 2 | 3 }): JSX.Element {
  const H = props.level === 3 ? 'h3' : 'h2';
  const id = props.id ?? `s-${props.title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return (
    <section class="card" aria-labelledby={id}>
      <div class="card-head">
        <H id={id}>{props.title}</H>
        {props.actions}
      </div>
      {props.children}
    </section>
  );
}

/** One input of a generated form, labelled, with its description as the hint. */
function FieldInput(props: { f: Field; value: FormValue | undefined; error: string | undefined; onInput: (v: FormValue) => void; idPrefix: string }): JSX.Element {
  const { f } = props;
  const id = `${props.idPrefix}-${f.name}`;
  const hintId = f.description ? `${id}-hint` : undefined;
  const errId = props.error ? `${id}-err` : undefined;
  const describedBy = [hintId, errId].filter(Boolean).join(' ') || undefined;
  const text = typeof props.value === 'string' ? props.value : '';
  const common = { id, name: f.name, 'aria-describedby': describedBy, 'aria-invalid': props.error ? true : undefined, required: f.required };
  let input: JSX.Element;
  switch (f.kind) {
    case 'boolean':
      input = <input {...common} required={false} type="checkbox" checked={props.value === true} onChange={(e) => props.onInput((e.currentTarget as HTMLInputElement).checked)} />;
      break;
    case 'enum':
      input = (
        <select {...common} value={text} onChange={(e) => props.onInput((e.currentTarget as HTMLSelectElement).value)}>
          <option value="">{f.required ? 'choose…' : '(default)'}</option>
          {(f.options ?? []).map((o) => (
            <option key={o} value={o}>
              {o}
            </option>
          ))}
        </select>
      );
      break;
    case 'list':
    case 'json':
      input = <textarea {...common} rows={3} value={text} onInput={(e) => props.onInput((e.currentTarget as HTMLTextAreaElement).value)} />;
      break;
    case 'integer':
    case 'number':
      input = <input {...common} type="number" min={f.min} max={f.max} step={f.kind === 'integer' ? 1 : 'any'} value={text} onInput={(e) => props.onInput(e.currentTarget.value)} />;
      break;
    default:
      input = <input {...common} type="text" maxLength={f.maxLength} value={text} onInput={(e) => props.onInput(e.currentTarget.value)} />;
  }
  const hint = f.kind === 'list' ? `${f.description ? `${f.description}. ` : ''}One value per line.` : f.kind === 'json' ? `${f.description ? `${f.description}. ` : ''}JSON.` : f.description;
  return (
    <div class={`field${f.kind === 'boolean' ? ' field-check' : ''}`}>
      <label for={id}>
        {f.label}
        {f.required ? <span class="req"> (required)</span> : null}
      </label>
      {input}
      {hint ? (
        <p id={hintId ?? `${id}-hint`} class="hint">
          {hint}
        </p>
      ) : null}
      {props.error ? (
        <p id={errId} class="field-error">
          {props.error}
        </p>
      ) : null}
    </div>
  );
}

/**
 * A form generated from an action's fields: an error summary naming each wrong field, then the
 * fields. `onSubmit` gets the parameters; its buttons are the caller's (`children`).
 */
export function SchemaForm(props: { fields: Field[]; idPrefix: string; onSubmit: (params: Record<string, unknown>, submitter: string) => void; children: ComponentChildren; testid?: string }): JSX.Element {
  const [values, setValues] = useState<Record<string, FormValue>>({});
  const [errors, setErrors] = useState<Array<{ field: string; message: string }>>([]);
  const summary = useRef<HTMLDivElement>(null);
  useEffect(() => {
    setValues({});
    setErrors([]);
  }, [props.fields]);
  const submit = (e: SubmitEvent): void => {
    e.preventDefault();
    const r = paramsOf(props.fields, values);
    setErrors(r.errors);
    if (r.errors.length > 0) {
      window.setTimeout(() => summary.current?.focus(), 0);
      return;
    }
    const submitter = (e.submitter as HTMLButtonElement | null)?.value ?? '';
    props.onSubmit(r.params, submitter);
  };
  const errorOf = (name: string): string | undefined => errors.find((x) => x.field === name)?.message;
  return (
    <form onSubmit={submit} noValidate data-testid={props.testid ?? 'schema-form'}>
      {errors.length > 0 ? (
        <div class="error-summary" role="alert" tabIndex={-1} ref={summary}>
          <h3>There is a problem</h3>
          <ul>
            {errors.map((x) => (
              <li key={x.field}>
                <a href={`#${props.idPrefix}-${x.field}`}>{x.message}</a>
              </li>
            ))}
          </ul>
        </div>
      ) : null}
      {props.fields.length === 0 ? <p class="muted">This action takes no parameters.</p> : null}
      {props.fields.map((f) => (
        <FieldInput key={f.name} f={f} idPrefix={props.idPrefix} value={values[f.name]} error={errorOf(f.name)} onInput={(v) => setValues((old) => ({ ...old, [f.name]: v }))} />
      ))}
      <div class="buttons">{props.children}</div>
    </form>
  );
}

/** Named values as a description list: each pair a term and what it is. */
export function Facts(props: { items: ReadonlyArray<readonly [string, ComponentChildren]>; testid?: string }): JSX.Element {
  return (
    <dl class="facts" data-testid={props.testid}>
      {props.items.map(([k, v]) => (
        <Fragment key={k}>
          <dt>{k}</dt>
          <dd>{v}</dd>
        </Fragment>
      ))}
    </dl>
  );
}

/** One column of a Table: its heading, and what a row shows in it. */
export interface Column<R> {
  head: string;
  cell: (r: R) => ComponentChildren;
  class?: string;
  testid?: string;
}

/**
 * A table of `rows`, one cell per column (a `false` column is left out: one only some roles see),
 * `empty` instead when there are none. `rowKey` keeps each row's state across reloads.
 */
interface TableProps<R> {
  testid: string;
  columns: ReadonlyArray<Column<R> | false>;
  rows: readonly R[];
  rowKey: (r: R) => string;
  rowTestid?: (r: R) => string;
  empty: string;
}

export function Table<R>(props: TableProps<R>): JSX.Element {
  if (props.rows.length === 0) return <p class="muted">{props.empty}</p>;
  const columns = props.columns.filter((c): c is Column<R> => c !== false);
  return (
    <table data-testid={props.testid}>
      <thead>
        <tr>
          {columns.map((c) => (
            <th key={c.head} scope="col">
              {c.head}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {props.rows.map((r) => (
          <tr key={props.rowKey(r)} data-testid={props.rowTestid?.(r)}>
            {columns.map((c) => (
              <td key={c.head} class={c.class} data-testid={c.testid}>
                {c.cell(r)}
              </td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** Loaded data shown through `show` once it is there; its error, or "Loading…", before. */
export function LoadedView<T>(props: { from: Loaded<T>; show: (data: T) => JSX.Element; what?: string }): JSX.Element {
  const { data, error, loading } = props.from;
  return (
    <>
      <ErrorBox error={error} />
      {data !== null ? props.show(data) : loading ? <Loading what={props.what} /> : null}
    </>
  );
}

/** A Table of the rows `rows` picks from loaded data; its error, or "Loading…", before. */
export function LoadedTable<T, R>(props: Omit<TableProps<R>, 'rows'> & { from: Loaded<T>; rows: (data: T) => readonly R[]; what?: string }): JSX.Element {
  const { from, rows, what, ...table } = props;
  return <LoadedView from={from} what={what} show={(d) => <Table {...table} rows={rows(d)} />} />;
}

/** Whole seconds left until `deadline` (ms since the epoch), updated four times a second; 0 after it. */
export function useSecondsLeft(deadline: number | null): number {
  const [left, setLeft] = useState(0);
  useEffect(() => {
    if (deadline === null) return;
    const tick = (): void => setLeft(Math.max(0, Math.ceil((deadline - Date.now()) / 1000)));
    tick();
    const t = window.setInterval(tick, 250);
    return () => window.clearInterval(t);
  }, [deadline]);
  return left;
}
