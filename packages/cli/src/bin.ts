#!/usr/bin/env node
/** The `holdfast` command. Each subcommand lives in its own module under commands/. */
import { run } from './cli.js';

process.exitCode = await run(process.argv.slice(2));
