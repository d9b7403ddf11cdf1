/**
 * Rich rules of a zone. A rule goes to firewalld as one D-Bus string and firewalld parses it.
 */
import type { AnyAction } from '../../../sdk/action.ts';
import { EL, reader, zonePair, type Deps } from './common.ts';
import { readZone } from './zones.ts';
import { P, checkRichRule } from './validate.ts';

export function richRuleActions(d: Deps): AnyAction[] {
  return [
    ...zonePair(d, EL.richRule, { add: ['add_rich_rule', 'Add rich rule to zone'], remove: ['remove_rich_rule', 'Remove rich rule from zone'] }, { rule: P.rule() }, (p) => [checkRichRule('rule', p.rule)]),
    reader('list_rich_rules', 'List rich rules of a zone', { zone: P.zone(), permanent: P.permanent() }, async (p) => ({ zone: p.zone, rich_rules: (await readZone(d, p.zone, p.permanent)).rich_rules })),
  ];
}
