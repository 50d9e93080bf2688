// The credential lives in sessionStorage only: it dies with the tab, and is never a cookie (so it
// cannot ride along on cross-site requests) nor in localStorage (so it does not outlive the session).

const CREDENTIAL = "sealtrail.credential";

export function getCredential(): string | null {
  try {
    return sessionStorage.getItem(CREDENTIAL);
  } catch {
    return null;
  }
}

export function setCredential(credential: string) {
  sessionStorage.setItem(CREDENTIAL, credential);
}

export function clearSession() {
  sessionStorage.clear();
}
