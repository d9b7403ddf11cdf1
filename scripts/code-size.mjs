#!/usr/bin/env node
// Prints the longest functions and files under src/ (issue 8's size aims: functions < 120 lines, files < 400).
// Uses the TypeScript compiler's parser, so arrow functions, methods and nested functions all count.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import ts from 'typescript';

const root = process.argv[2] ?? 'src';
const top = Number(process.env.TOP ?? 8);

function* files(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* files(p);
    else if (p.endsWith('.ts')) yield p;
  }
}

const fileRows = [];
const fnRows = [];
for (const file of files(root)) {
  const text = readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  fileRows.push({ file: relative('.', file), lines: sf.getLineAndCharacterOfPosition(text.length).line + 1 });
  const visit = (node) => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
      const name = node.name?.getText(sf) ?? (ts.isVariableDeclaration(node.parent) ? node.parent.name.getText(sf) : '(anonymous)');
      fnRows.push({ where: `${relative('.', file)}:${start + 1}`, name, lines: end - start + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
}
fileRows.sort((a, b) => b.lines - a.lines);
fnRows.sort((a, b) => b.lines - a.lines);
console.log('| longest files | lines |\n| --- | ---: |');
for (const r of fileRows.slice(0, top)) console.log(`| ${r.file} | ${r.lines} |`);
console.log('\n| longest functions | name | lines |\n| --- | --- | ---: |');
for (const r of fnRows.slice(0, top)) console.log(`| ${r.where} | ${r.name} | ${r.lines} |`);
