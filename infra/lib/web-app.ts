// The web app, the CDK twin of template.yaml's "web app" section: web/ in a
// private bucket, CloudFront in front through origin access control, with
// the page's security headers, and /settings.json written from the stack's
// own outputs. The bucket, its policy, the OAC, the headers policy and the
// distribution are the same resources under the same logical IDs as in
// template.yaml; only the upload differs by tool (here BucketDeployment, in
// SAM a layer and a small custom resource), as tests/infra checks.

import * as path from 'node:path';

import { Aws, CfnCondition, CfnDeletionPolicy, CfnResource, Fn, Stack } from 'aws-cdk-lib';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';

import { TincanParameters } from './parameters';

/** Managed-CachingOptimized and Managed-CachingDisabled. */
const CACHING_OPTIMIZED = '658327ea-f89d-4fab-a63d-7e88639e58f6';
const CACHING_DISABLED = '4135ea2d-6df8-44a3-9df3-4b5a84be39ad';

/** Files of web/ that are not the page (the npm package's, the docs'). */
const NOT_THE_PAGE = [
  'README.md',
  'package.json',
  'package-lock.json',
  'tsconfig*.json',
  'screenshots',
  'node_modules',
  'types',
  '*.d.ts',
  '*.tgz',
];

export interface WebApp {
  /** `https://` + the app's host, no slash: the HTTP API's default CORS origin. */
  origin: string;
  hasAppDomain: CfnCondition;
  distribution: cloudfront.CfnDistribution;
  bucket: s3.CfnBucket;
}

/** The bucket, distribution and headers; call `deployWebApp` once the APIs exist. */
export function defineWebApp(
  stack: Stack,
  params: TincanParameters,
  httpApi: apigwv2.CfnApi,
  wsApi: apigwv2.CfnApi,
): WebApp {
  const hasAppDomain = new CfnCondition(stack, 'HasAppDomain', {
    expression: Fn.conditionAnd(
      Fn.conditionNot(Fn.conditionEquals(params.appDomainName.valueAsString, '')),
      Fn.conditionNot(Fn.conditionEquals(params.appCertificateArn.valueAsString, '')),
    ),
  });

  const bucket = new s3.CfnBucket(stack, 'WebBucket', {
    publicAccessBlockConfiguration: {
      blockPublicAcls: true,
      blockPublicPolicy: true,
      ignorePublicAcls: true,
      restrictPublicBuckets: true,
    },
    ownershipControls: { rules: [{ objectOwnership: 'BucketOwnerEnforced' }] },
    bucketEncryption: {
      serverSideEncryptionConfiguration: [
        { serverSideEncryptionByDefault: { sseAlgorithm: 'AES256' } },
      ],
    },
  });
  bucket.cfnOptions.deletionPolicy = CfnDeletionPolicy.DELETE;
  bucket.cfnOptions.updateReplacePolicy = CfnDeletionPolicy.DELETE;

  const oac = new cloudfront.CfnOriginAccessControl(stack, 'AppOriginAccessControl', {
    originAccessControlConfig: {
      name: `${Aws.STACK_NAME}-web`,
      description: 'CloudFront signs its requests to the web app\'s bucket.',
      originAccessControlOriginType: 's3',
      signingBehavior: 'always',
      signingProtocol: 'sigv4',
    },
  });

  // What the page needs and nothing more: its own scripts, styles and data:
  // images; media from WebRTC streams; network to this origin, the HTTP API
  // and the WebSocket API; no frames of it anywhere.
  const wsOrigin = `wss://${wsApi.ref}.execute-api.${Aws.REGION}.${Aws.URL_SUFFIX}`;
  const headers = new cloudfront.CfnResponseHeadersPolicy(stack, 'AppResponseHeadersPolicy', {
    responseHeadersPolicyConfig: {
      name: `${Aws.STACK_NAME}-app`,
      comment: 'Security headers of the Tincan page.',
      securityHeadersConfig: {
        contentSecurityPolicy: {
          override: true,
          contentSecurityPolicy: `default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob: mediastream:; connect-src 'self' ${httpApi.attrApiEndpoint} ${wsOrigin}; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'`,
        },
        contentTypeOptions: { override: true },
        frameOptions: { frameOption: 'DENY', override: true },
        referrerPolicy: { referrerPolicy: 'no-referrer', override: true },
        strictTransportSecurity: {
          accessControlMaxAgeSec: 31536000,
          includeSubdomains: false,
          preload: false,
          override: true,
        },
      },
      customHeadersConfig: {
        items: [
          {
            header: 'Permissions-Policy',
            value: 'camera=(), geolocation=(), microphone=(self)',
            override: true,
          },
        ],
      },
    },
  });

  const behavior = {
    targetOriginId: 'web',
    viewerProtocolPolicy: 'redirect-to-https',
    allowedMethods: ['GET', 'HEAD'],
    cachedMethods: ['GET', 'HEAD'],
    compress: true,
    responseHeadersPolicyId: headers.ref,
  };
  const distribution = new cloudfront.CfnDistribution(stack, 'AppDistribution', {
    distributionConfig: {
      enabled: true,
      comment: `${Aws.STACK_NAME} web app`,
      defaultRootObject: 'index.html',
      httpVersion: 'http2and3',
      ipv6Enabled: true,
      priceClass: 'PriceClass_100',
      aliases: Fn.conditionIf(
        hasAppDomain.logicalId,
        [params.appDomainName.valueAsString],
        Aws.NO_VALUE,
      ) as unknown as string[],
      viewerCertificate: Fn.conditionIf(
        hasAppDomain.logicalId,
        {
          AcmCertificateArn: params.appCertificateArn.valueAsString,
          SslSupportMethod: 'sni-only',
          MinimumProtocolVersion: 'TLSv1.2_2021',
        },
        { CloudFrontDefaultCertificate: true },
      ) as unknown as cloudfront.CfnDistribution.ViewerCertificateProperty,
      origins: [
        {
          id: 'web',
          domainName: bucket.attrRegionalDomainName,
          originAccessControlId: oac.attrId,
          s3OriginConfig: { originAccessIdentity: '' },
        },
      ],
      // Every deploy invalidates /*.
      defaultCacheBehavior: { ...behavior, cachePolicyId: CACHING_OPTIMIZED },
      // Never a stale API address after a redeploy.
      cacheBehaviors: [
        { ...behavior, pathPattern: '/settings.json', cachePolicyId: CACHING_DISABLED },
      ],
    },
  });

  new s3.CfnBucketPolicy(stack, 'WebBucketPolicy', {
    bucket: bucket.ref,
    policyDocument: {
      Version: '2012-10-17',
      Statement: [
        // Only this stack's distribution reads, signed by its OAC.
        {
          Sid: 'CloudFrontReadsThroughOriginAccessControl',
          Effect: 'Allow',
          Principal: { Service: 'cloudfront.amazonaws.com' },
          Action: 's3:GetObject',
          Resource: `${bucket.attrArn}/*`,
          Condition: {
            StringEquals: {
              'AWS:SourceArn': `arn:${Aws.PARTITION}:cloudfront::${Aws.ACCOUNT_ID}:distribution/${distribution.ref}`,
            },
          },
        },
        {
          Sid: 'TlsOnly',
          Effect: 'Deny',
          Principal: '*',
          Action: 's3:*',
          Resource: [bucket.attrArn, `${bucket.attrArn}/*`],
          Condition: { Bool: { 'aws:SecureTransport': 'false' } },
        },
      ],
    },
  });

  const origin = Fn.conditionIf(
    hasAppDomain.logicalId,
    `https://${params.appDomainName.valueAsString}`,
    `https://${distribution.attrDomainName}`,
  ).toString();
  return { origin, hasAppDomain, distribution, bucket };
}

/**
 * Uploads web/ and writes settings.json (`httpApiUrl`, `webSocketUrl`) from
 * the stack's outputs; invalidates the distribution; removes the files when
 * the stack is deleted (so the bucket can go).
 */
export function deployWebApp(
  stack: Stack,
  web: WebApp,
  settings: { httpApiUrl: string; webSocketUrl: string },
): void {
  const bucket = s3.Bucket.fromBucketAttributes(stack, 'WebBucketRef', {
    bucketName: web.bucket.ref,
    bucketArn: web.bucket.attrArn,
  });
  const distribution = cloudfront.Distribution.fromDistributionAttributes(stack, 'AppDistributionRef', {
    distributionId: web.distribution.ref,
    domainName: web.distribution.attrDomainName,
  });
  new s3deploy.BucketDeployment(stack, 'WebDeployment', {
    destinationBucket: bucket,
    sources: [
      s3deploy.Source.asset(path.join(__dirname, '..', '..', 'web'), { exclude: NOT_THE_PAGE }),
      // The page's runtime settings (web/app/settings.js), from this stack.
      s3deploy.Source.jsonData('settings.json', settings),
    ],
    cacheControl: [s3deploy.CacheControl.noCache()],
    distribution,
    distributionPaths: ['/*'],
    prune: true,
    retainOnDelete: false,
  });
  // BucketDeployment's handler (a singleton CDK names so) depends on its
  // role twice over, which cfn-lint flags (W3005); harmless, and not ours.
  for (const child of stack.node.children) {
    if (!child.node.id.startsWith('Custom::CDKBucketDeployment')) continue;
    const cfnHandler = child.node.defaultChild as CfnResource | undefined;
    cfnHandler?.addMetadata('cfn-lint', { config: { ignore_checks: ['W3005'] } });
  }
}
