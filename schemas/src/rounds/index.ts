export * from "./task.ts";
export * from "./checkin.ts";
