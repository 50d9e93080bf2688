import { api } from "../api";

export interface Permissions {
  read_events: boolean;
  query: boolean;
  export: boolean;
  place_holds: boolean;
  change_retention: boolean;
  verify: boolean;
}

export interface Me {
  subject: string;
  tenant: string;
  roles: string[];
  permissions: Permissions;
}

export function fetchMe(): Promise<Me> {
  return api<Me>("/v1/me");
}
