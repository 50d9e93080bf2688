import { api } from "../api";

export interface OidcConfig {
  issuer: string;
  client_id: string;
  authorization_endpoint: string;
  token_endpoint: string;
  scope: string;
}

export async function fetchOidcConfig(): Promise<OidcConfig | null> {
  const config = await api<{ oidc: OidcConfig | null }>("/v1/console/config", { anonymous: true });
  return config.oidc ?? null;
}

export function issuerHost(config: OidcConfig): string {
  try {
    return new URL(config.issuer).host;
  } catch {
    return config.issuer;
  }
}

export function clearPending(names: string[]) {
  for (const name of names) sessionStorage.removeItem(name);
}
