// The stack's parameters: the same names, types, defaults and constraints as
// the Parameters of ../template.yaml, so `cdk deploy --parameters Name=value`
// and `sam deploy --parameter-overrides Name=value` take the same input.

import { CfnParameter, Stack } from 'aws-cdk-lib';

const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
  3288, 3653,
];

export interface TincanParameters {
  lambdaArchitecture: CfnParameter;
  lambdaDeploymentType: CfnParameter;
  stageName: CfnParameter;
  logLevel: CfnParameter;
  logRetentionDays: CfnParameter;
  corsOrigins: CfnParameter;
  appDomainName: CfnParameter;
  appCertificateArn: CfnParameter;
  mongoDbUri: CfnParameter;
  mongoDbDatabase: CfnParameter;
  accessTokenTtl: CfnParameter;
  refreshTokenTtl: CfnParameter;
  roomMax: CfnParameter;
  meshMax: CfnParameter;
  sfuSlots: CfnParameter;
  maxMessageBytes: CfnParameter;
  messageRate: CfnParameter;
  messageBurst: CfnParameter;
  maxSocketsPerUser: CfnParameter;
  apiKeyId: CfnParameter;
  sweepSchedule: CfnParameter;
  turnCredentialTtl: CfnParameter;
  turnUrl: CfnParameter;
  vpcId: CfnParameter;
  subnetIds: CfnParameter;
  mediaNodeInstanceType: CfnParameter;
  mediaNodeImageId: CfnParameter;
  mediaNodeArtifactBucket: CfnParameter;
  mediaNodeArtifactKey: CfnParameter;
  mediaNodeArtifactSha256: CfnParameter;
  mediaNodeMinSize: CfnParameter;
  mediaNodeMaxSize: CfnParameter;
  loadPerNodeTarget: CfnParameter;
  relayPortMin: CfnParameter;
  relayPortMax: CfnParameter;
  drainGraceSeconds: CfnParameter;
  turnTlsDomain: CfnParameter;
  turnTlsCertificateSecret: CfnParameter;
  alarmEmail: CfnParameter;
  apiGatewayLogRole: CfnParameter;
  tableKmsKeyArn: CfnParameter;
  tablePointInTimeRecovery: CfnParameter;
  mongoDbFunctionConcurrency: CfnParameter;
}

export function defineParameters(stack: Stack): TincanParameters {
  const p = (id: string, props: ConstructorParameters<typeof CfnParameter>[2]) =>
    new CfnParameter(stack, id, props);
  return {
    lambdaArchitecture: p('LambdaArchitecture', {
      type: 'String',
      default: 'arm64',
      allowedValues: ['arm64', 'x86_64'],
      description:
        'Instruction set of the Lambda functions (sam build cross-compiles with cargo-lambda).',
    }),
    lambdaDeploymentType: p('LambdaDeploymentType', {
      type: 'String',
      default: 'Canary10Percent5Minutes',
      allowedValues: [
        'Canary10Percent5Minutes',
        'Canary10Percent10Minutes',
        'Canary10Percent15Minutes',
        'Canary10Percent30Minutes',
        'Linear10PercentEvery1Minute',
        'Linear10PercentEvery2Minutes',
        'Linear10PercentEvery3Minutes',
        'Linear10PercentEvery10Minutes',
        'AllAtOnce',
      ],
      description:
        "How CodeDeploy moves each function's alias live to a new version - a canary or linear shift that rolls back when the function's DeployAlarm fires; AllAtOnce switches at once (still rolled back on the alarm).",
    }),
    stageName: p('StageName', {
      type: 'String',
      default: 'prod',
      allowedPattern: '^[A-Za-z0-9_-]{1,64}$',
      description: 'WebSocket API stage; the WebSocket URL ends with it.',
    }),
    logLevel: p('LogLevel', {
      type: 'String',
      default: 'info',
      description: 'RUST_LOG filter of every function (e.g. info, debug, tincan_ws_api=debug).',
    }),
    logRetentionDays: p('LogRetentionDays', {
      type: 'Number',
      default: '30',
      allowedValues: LOG_RETENTION_DAYS.map(String),
      description: 'CloudWatch Logs retention of the function log groups.',
    }),
    corsOrigins: p('CorsOrigins', {
      type: 'String',
      default: '',
      description:
        "Origins allowed to call the HTTP API from a browser - empty for exactly the stack's own web app (AppUrl's origin), or '*', 'none', or comma-separated origins.",
    }),
    appDomainName: p('AppDomainName', {
      type: 'String',
      default: '',
      allowedPattern: '^$|^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$',
      description:
        "Optional custom domain of the web app (e.g. calls.example.com; point a CNAME or alias at AppDistributionDomainName). Needs AppCertificateArn. Empty - the CloudFront name.",
    }),
    appCertificateArn: p('AppCertificateArn', {
      type: 'String',
      default: '',
      allowedPattern: '^$|^arn:aws[a-z-]*:acm:us-east-1:[0-9]{12}:certificate/[A-Za-z0-9-]+$',
      description:
        "ACM certificate for AppDomainName, in us-east-1 (CloudFront's region). Used only with AppDomainName.",
    }),
    mongoDbUri: p('MongoDbUri', {
      type: 'String',
      noEcho: true,
      minLength: 1,
      allowedPattern: '^mongodb(\\+srv)?://.+',
      description:
        'MongoDB Atlas connection string (the mongodb+srv URI Atlas shows under Connect). Stored in Secrets Manager; never echoed.',
    }),
    mongoDbDatabase: p('MongoDbDatabase', {
      type: 'String',
      default: 'tincan',
      description: 'MongoDB database name.',
    }),
    accessTokenTtl: p('AccessTokenTtl', {
      type: 'Number',
      default: 900,
      minValue: 60,
      description: 'Access-token lifetime, seconds.',
    }),
    refreshTokenTtl: p('RefreshTokenTtl', {
      type: 'Number',
      default: 2592000,
      minValue: 3600,
      description: 'Refresh-token lifetime, seconds.',
    }),
    roomMax: p('RoomMax', {
      type: 'Number',
      default: 100,
      minValue: 2,
      maxValue: 100,
      description: "Most participants in one room (rooms past MeshMax are carried by their media node's SFU).",
    }),
    meshMax: p('MeshMax', {
      type: 'Number',
      default: 4,
      minValue: 2,
      maxValue: 8,
      description: "Most participants of a peer-to-peer room; the next joiner moves the room to its media node's SFU.",
    }),
    sfuSlots: p('SfuSlots', {
      type: 'Number',
      default: 3,
      minValue: 1,
      maxValue: 16,
      description: 'Audio slots each SFU participant receives (the loudest speakers).',
    }),
    maxMessageBytes: p('MaxMessageBytes', {
      type: 'Number',
      default: 16384,
      minValue: 1024,
      maxValue: 131072,
      description:
        'Largest signaling message accepted, bytes (API Gateway itself stops at 128 KB).',
    }),
    messageRate: p('MessageRate', {
      type: 'Number',
      default: 20,
      minValue: 0,
      description:
        'Messages per second each socket may send (0 - no limit); over it the sender gets rate-limited, and a socket that keeps sending at twice it is closed with 1008.',
    }),
    messageBurst: p('MessageBurst', {
      type: 'Number',
      default: 40,
      minValue: 0,
      description: 'Messages a socket may send in a burst on top of MessageRate.',
    }),
    maxSocketsPerUser: p('MaxSocketsPerUser', {
      type: 'Number',
      default: 8,
      minValue: 0,
      description: 'Open WebSockets per user (several tabs, 0 - no limit); one more is refused at $connect with 429.',
    }),
    apiKeyId: p('ApiKeyId', {
      type: 'String',
      default: 'app',
      allowedPattern: '^[A-Za-z0-9_-]{1,64}$',
      description:
        'Id of the API key apps sign join tokens with (docs/embedding.md); its secret is generated (output ApiKeySecretArn). Deploy with a new id to rotate.',
    }),
    sweepSchedule: p('SweepSchedule', {
      type: 'String',
      default: 'rate(1 minute)',
      description:
        'How often ws-sweep ends the participants that are gone for good (grace run out, or a socket ended without $disconnect) in rooms nobody reads again - an EventBridge schedule expression.',
    }),
    turnCredentialTtl: p('TurnCredentialTtl', {
      type: 'Number',
      default: 3600,
      minValue: 60,
      description: 'Lifetime of the TURN credentials handed to browsers, seconds.',
    }),
    turnUrl: p('TurnUrl', {
      type: 'String',
      default: '',
      description:
        "TURN host:port advertised to browsers. Empty - the media nodes' load balancer, port 3478.",
    }),
    vpcId: p('VpcId', { type: 'AWS::EC2::VPC::Id', description: 'VPC of the media nodes.' }),
    subnetIds: p('SubnetIds', {
      type: 'List<AWS::EC2::Subnet::Id>',
      description:
        'Public subnets in at least two Availability Zones for the media nodes and their load balancer.',
    }),
    mediaNodeInstanceType: p('MediaNodeInstanceType', {
      type: 'String',
      default: 't4g.small',
      description:
        'Instance type of a media node (Graviton by default; match MediaNodeImageId and the binary).',
    }),
    mediaNodeImageId: p('MediaNodeImageId', {
      type: 'AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>',
      default: '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64',
      description:
        'AMI of the media nodes (Amazon Linux 2023, resolved from the public SSM parameter).',
    }),
    mediaNodeArtifactBucket: p('MediaNodeArtifactBucket', {
      type: 'String',
      minLength: 3,
      description:
        'S3 bucket holding the tincan-media-node binary (Linux, same architecture as the instances).',
    }),
    mediaNodeArtifactKey: p('MediaNodeArtifactKey', {
      type: 'String',
      minLength: 1,
      description:
        'S3 key of this version of the tincan-media-node binary, one key per build (e.g. tincan-media-node/<version>/tincan-media-node); never upload over a key a stack uses.',
    }),
    mediaNodeArtifactSha256: p('MediaNodeArtifactSha256', {
      type: 'String',
      allowedPattern: '^[0-9a-f]{64}$',
      constraintDescription: 'the 64 lowercase hex digits sha256sum prints for the binary',
      description:
        'SHA-256 of the binary at MediaNodeArtifactKey (sha256sum, 64 lowercase hex digits); a node whose download differs fails its boot before running it.',
    }),
    mediaNodeMinSize: p('MediaNodeMinSize', {
      type: 'Number',
      default: 1,
      minValue: 1,
      description:
        'Fewest media nodes - at least 1, since only a running node publishes the load the group scales on (docs/deploy.md).',
    }),
    mediaNodeMaxSize: p('MediaNodeMaxSize', {
      type: 'Number',
      default: 4,
      minValue: 1,
      description: 'Most media nodes.',
    }),
    loadPerNodeTarget: p('LoadPerNodeTarget', {
      type: 'Number',
      default: 200,
      minValue: 1,
      description: 
        "Target-tracking value - load per node on average, load being live TURN allocations plus SFU participants (the nodes' tincan_node_load).",
    }),
    relayPortMin: p('RelayPortMin', {
      type: 'Number',
      default: 49152,
      minValue: 1024,
      maxValue: 65535,
      description: 'Lowest UDP relay port on a media node.',
    }),
    relayPortMax: p('RelayPortMax', {
      type: 'Number',
      default: 65535,
      minValue: 1024,
      maxValue: 65535,
      description: 'Highest UDP relay port on a media node.',
    }),
    drainGraceSeconds: p('DrainGraceSeconds', {
      type: 'Number',
      default: 600,
      minValue: 0,
      maxValue: 7200,
      description:
        'How long a terminating media node lets its calls finish before closing them.',
    }),
    turnTlsDomain: p('TurnTlsDomain', {
      type: 'String',
      default: '',
      allowedPattern:
        '^$|^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$',
      description:
        'DNS name for TURN over TLS on 443 (turns:NAME:443), pointed at the TurnLoadBalancer (CNAME or alias). Empty - no TURN over TLS.',
    }),
    turnTlsCertificateSecret: p('TurnTlsCertificateSecret', {
      type: 'String',
      default: '',
      allowedPattern: '^[A-Za-z0-9/_+=.@-]*$',
      description:
        'Name of a Secrets Manager secret in this region holding {"certificate":"PEM chain","privateKey":"PEM key"} for TurnTlsDomain (docs/deploy.md). Needed with TurnTlsDomain.',
    }),
    alarmEmail: p('AlarmEmail', {
      type: 'String',
      default: '',
      allowedPattern: '^$|^[^@\\s]+@[^@\\s]+$',
      description:
        'Email address the alarms notify (confirm the subscription mail AWS sends). Empty - the alarms notify the AlarmTopic SNS topic only.',
    }),
    apiGatewayLogRole: p('ApiGatewayLogRole', {
      type: 'String',
      default: 'none',
      allowedValues: ['none', 'existing', 'create'],
      description:
        "none - no WebSocket access log, nothing account-wide is touched; existing - log through the account's API Gateway CloudWatch Logs role, which must be set already; create - set that account-wide role to one of this stack (replaces any other for every API in the region; docs/deploy.md).",
    }),
    tableKmsKeyArn: p('TableKmsKeyArn', {
      type: 'String',
      default: '',
      allowedPattern: '^$|^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$',
      description:
        "ARN of a customer-managed KMS key to encrypt the DynamoDB tables with (its key policy must let the account's principals use it through DynamoDB; docs/deploy.md). Empty - DynamoDB's AWS-owned key, at no cost.",
    }),
    tablePointInTimeRecovery: p('TablePointInTimeRecovery', {
      type: 'String',
      default: 'false',
      allowedValues: ['true', 'false'],
      description:
        'true - point-in-time recovery (35 days of continuous backups) on the DynamoDB tables, billed per GB-month; false - none.',
    }),
    mongoDbFunctionConcurrency: p('MongoDbFunctionConcurrency', {
      type: 'Number',
      default: 0,
      minValue: 0,
      description:
        'Reserved concurrency of each function that opens MongoDB (ws-default, ws-disconnect, http-api), which caps Atlas connections at about 3 x this x 4 (docs/deploy.md, MongoDB Atlas connections). 0 - not reserved.',
    }),
  };
}
