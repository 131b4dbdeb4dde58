/** Why a received discovery record (data or endpoint blob) could not be opened or parsed. */
export class BlobError extends Error {
  override name = 'BlobError';
}
