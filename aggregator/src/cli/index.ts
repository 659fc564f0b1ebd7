export * from "./command.ts";
export * from "./cli.ts";
