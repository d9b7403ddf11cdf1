import type { JSX } from 'preact';
export function TemplatesPage(): JSX.Element {
  return <h1>Templates</h1>;
}
export function TemplatePage(_props: { id: string }): JSX.Element {
  return <h1>Template</h1>;
}
