/**
 * Imported by s3.ts before the AWS SDK, so this runs first. The SDK prints a
 * NodeVersionSupportWarning on Node 20 when a client is made; that is advice for
 * tdv's maintainers, not for someone pushing data, so it is switched off unless
 * the user set the variable themselves.
 */
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export {};
