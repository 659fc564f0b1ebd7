export * from "./task.ts";
export * from "./checkin.ts";
export * from "./admin.ts";
