/**
 * Module SDK: what a plugin author imports (`tuxsec-agent/sdk`).
 */
export { BaseModule, ActionModule } from './base-module.ts';
export type { ModuleCapability, CommandRequest, CommandResponse, InitResult, ModuleContext } from './base-module.ts';
export { defineAction } from './action.ts';
export type { ActionDef, ActionContext, AnyAction, Logger, LongRunning, PeerIdentity } from './action.ts';
export { Params, validateParams, schemaToParameters, parametersToSchema } from './schema.ts';
export { Type } from '@sinclair/typebox';
export type { Static, TObject } from '@sinclair/typebox';
export { TuxsecError, ErrorCodes } from '../protocol/errors.ts';
export type { ErrorCode } from '../protocol/errors.ts';
export type { AccessClass } from '../protocol/messages.ts';
/** How a module runs a program: absolute path, argument array, clean environment, capped output, its process group ended on abort. */
export { run } from '../os/exec.ts';
export type { RunOptions, RunResult } from '../os/exec.ts';
