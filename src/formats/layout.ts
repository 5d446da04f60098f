/** tdv's own directory at the top of the repository: configuration, cache, temp files. */
export const TDV_DIR = '.tdv';
