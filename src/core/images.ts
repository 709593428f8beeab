// Image references, parsed once and correctly: splitting on ":" would read the
// port of `registry:5000/app` as a tag. Grammar (distribution/reference):
//   [domain[:port]/]path[:tag][@algorithm:hex]

export interface ImageReference {
  /** Registry host, with port; `docker.io` when the reference names none. */
  domain: string;
  /** Repository path within the registry, `library/` added for Docker Hub's official images. */
  path: string;
  tag?: string;
  digest?: string;
}

const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';

export function parseImageReference(ref: string): ImageReference {
  let rest = ref.trim();
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  }
  // A tag can only follow the last "/", which keeps a registry port out of it.
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.indexOf(':', lastSlash + 1);
  if (colon >= 0) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  let domain = DEFAULT_DOMAIN;
  let path = rest;
  const firstSlash = rest.indexOf('/');
  if (firstSlash >= 0) {
    const first = rest.slice(0, firstSlash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase()) {
      domain = first === LEGACY_DEFAULT_DOMAIN ? DEFAULT_DOMAIN : first;
      path = rest.slice(firstSlash + 1);
    }
  }
  if (domain === DEFAULT_DOMAIN && !path.includes('/')) path = `library/${path}`;
  return { domain, path, ...(tag === undefined ? {} : { tag }), ...(digest === undefined ? {} : { digest }) };
}

/** The fully qualified form: `nginx` and `docker.io/library/nginx:latest` are one image. */
export function normalizeImageReference(ref: string): string {
  const { domain, path, tag, digest } = parseImageReference(ref);
  const tagPart = tag ?? (digest === undefined ? 'latest' : undefined);
  return `${domain}/${path}${tagPart === undefined ? '' : `:${tagPart}`}${digest === undefined ? '' : `@${digest}`}`;
}

export function sameImageReference(a: string, b: string): boolean {
  return a === b || normalizeImageReference(a) === normalizeImageReference(b);
}

/**
 * The content digest inside an image reference or a container status's
 * imageID (`docker-pullable://app@sha256:..`, `sha256:..`), if it has one.
 */
export function imageDigest(refOrImageID: string): string | undefined {
  const match = /(sha256|sha384|sha512):[0-9a-f]{32,}/.exec(refOrImageID);
  return match?.[0];
}
