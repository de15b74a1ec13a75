// Tincan's AWS stack, the CDK twin of ../template.yaml: the same resources
// under the same logical IDs, the same parameters, environment and IAM
// (tests/infra/test_templates.py holds the two together).

import { existsSync } from 'node:fs';
import * as path from 'node:path';

import {
  Aws,
  CfnCondition,
  CfnDeletionPolicy,
  CfnResource,
  CfnOutput,
  Duration,
  Fn,
  RemovalPolicy,
  SecretValue,
  Stack,
  StackProps,
} from 'aws-cdk-lib';
import * as apigw from 'aws-cdk-lib/aws-apigateway';
import * as apigwv2 from 'aws-cdk-lib/aws-apigatewayv2';
import * as codedeploy from 'aws-cdk-lib/aws-codedeploy';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';

import { defineMediaFleet, logicalId } from './media-fleet';
import { defineMonitoring } from './monitoring';
import { defineParameters } from './parameters';
import { defineWebApp, deployWebApp } from './web-app';

export interface TincanStackProps extends StackProps {
  /**
   * Directory of cargo-lambda's output: one `<binary>/bootstrap` per
   * function (`cargo lambda build --release --arm64 -p tincan-functions`
   * writes `$CARGO_TARGET_DIR/lambda/<binary>/bootstrap`).
   */
  lambdaDir: string;
}

/** Access-log lines: no query string or path, since the WebSocket token is in one. */
const WS_ACCESS_LOG_FORMAT =
  '{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","connectionId":"$context.connectionId","eventType":"$context.eventType","routeKey":"$context.routeKey","status":"$context.status","integrationStatus":"$context.integrationStatus","integrationLatencyMs":"$context.integrationLatency","error":"$context.error.message","integrationError":"$context.integration.error","requestTime":"$context.requestTimeEpoch"}';
const HTTP_ACCESS_LOG_FORMAT =
  '{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","routeKey":"$context.routeKey","status":"$context.status","responseLatencyMs":"$context.responseLatency","integrationStatus":"$context.integrationStatus","integrationError":"$context.integrationErrorMessage","error":"$context.error.message","requestTime":"$context.requestTimeEpoch"}';

/** The WebSocket routes and the binary behind each. */
const WS_ROUTES = [
  { routeKey: '$connect', binary: 'ws-connect', name: 'Connect', fn: 'WsConnect',
    description: 'Tincan WebSocket $connect - verifies the access token, records the connection.' },
  { routeKey: '$disconnect', binary: 'ws-disconnect', name: 'Disconnect', fn: 'WsDisconnect',
    description: 'Tincan WebSocket $disconnect - leaves the room, tells the others.' },
  { routeKey: '$default', binary: 'ws-default', name: 'Default', fn: 'WsDefault',
    description: 'Tincan WebSocket $default - join, leave, signal, mute, ping.' },
] as const;

/** The HTTP API's routes (the README's HTTP API table), plus CORS preflight. */
const HTTP_ROUTES: ReadonlyArray<[string, string]> = [
  ['RegisterRoute', 'POST /auth/register'],
  ['LoginRoute', 'POST /auth/login'],
  ['RefreshRoute', 'POST /auth/refresh'],
  ['LogoutRoute', 'POST /auth/logout'],
  ['MeRoute', 'GET /me'],
  ['GetPreferencesRoute', 'GET /me/preferences'],
  ['PutPreferencesRoute', 'PUT /me/preferences'],
  ['CallsRoute', 'GET /me/calls'],
  ['ChangePasswordRoute', 'POST /me/password'],
  ['DeleteMeRoute', 'DELETE /me'],
  ['TurnCredentialsRoute', 'GET /turn-credentials'],
  ['PreflightRoute', 'OPTIONS /{proxy+}'],
];

export class TincanStack extends Stack {
  constructor(scope: Construct, id: string, props: TincanStackProps) {
    super(scope, id, props);
    const params = defineParameters(this);
    const hasTurnUrl = new CfnCondition(this, 'HasTurnUrl', {
      expression: Fn.conditionNot(Fn.conditionEquals(params.turnUrl.valueAsString, '')),
    });
    const hasAlarmEmail = new CfnCondition(this, 'HasAlarmEmail', {
      expression: Fn.conditionNot(Fn.conditionEquals(params.alarmEmail.valueAsString, '')),
    });
    const createApiGatewayLogRole = new CfnCondition(this, 'CreateApiGatewayLogRole', {
      expression: Fn.conditionEquals(params.apiGatewayLogRole.valueAsString, 'create'),
    });
    const webSocketAccessLogs = new CfnCondition(this, 'WebSocketAccessLogs', {
      expression: Fn.conditionNot(Fn.conditionEquals(params.apiGatewayLogRole.valueAsString, 'none')),
    });
    const hasTableKmsKey = new CfnCondition(this, 'HasTableKmsKey', {
      expression: Fn.conditionNot(Fn.conditionEquals(params.tableKmsKeyArn.valueAsString, '')),
    });
    const tablePitr = new CfnCondition(this, 'TablePitr', {
      expression: Fn.conditionEquals(params.tablePointInTimeRecovery.valueAsString, 'true'),
    });
    const reserveMongoDbConcurrency = new CfnCondition(this, 'ReserveMongoDbConcurrency', {
      expression: Fn.conditionNot(
        Fn.conditionEquals(params.mongoDbFunctionConcurrency.valueAsString, 0),
      ),
    });
    /** Encryption and backups of a table: TableKmsKeyArn, TablePointInTimeRecovery. */
    const protectTable = (table: dynamodb.Table) => {
      const cfn = table.node.defaultChild as dynamodb.CfnTable;
      cfn.addPropertyOverride(
        'SSESpecification',
        Fn.conditionIf(
          hasTableKmsKey.logicalId,
          { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: params.tableKmsKeyArn.valueAsString },
          Aws.NO_VALUE,
        ),
      );
      cfn.addPropertyOverride('PointInTimeRecoverySpecification', {
        PointInTimeRecoveryEnabled: Fn.conditionIf(tablePitr.logicalId, true, false),
      });
    };
    const logGroup = (id: string, name: string) =>
      logicalId(
        new logs.LogGroup(this, id, {
          logGroupName: `/tincan/${Aws.STACK_NAME}/${name}`,
          retention: params.logRetentionDays.valueAsNumber as logs.RetentionDays,
          removalPolicy: RemovalPolicy.DESTROY,
        }),
        id,
      );
    // Access logs of both APIs (no query strings: the WebSocket token is one)
    // and the media nodes' service logs and boot output.
    const wsAccessLogs = logGroup('WebSocketAccessLogGroup', 'websocket-access');
    const httpAccessLogs = logGroup('HttpApiAccessLogGroup', 'http-access');
    const nodeLogs = logGroup('MediaNodeLogGroup', 'media-node');

    // ------------------------------------------------------------ data
    const connections = logicalId(
      new dynamodb.Table(this, 'ConnectionsTable', {
        partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        timeToLiveAttribute: 'expiresAt',
        removalPolicy: RemovalPolicy.DESTROY,
      }),
      'ConnectionsTable',
    );
    protectTable(connections);
    connections.addGlobalSecondaryIndex({
      indexName: 'byRoom',
      partitionKey: { name: 'room', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'connectedAt', type: dynamodb.AttributeType.NUMBER },
      projectionType: dynamodb.ProjectionType.ALL,
    });
    const mediaNodes = logicalId(
      new dynamodb.Table(this, 'MediaNodesTable', {
        partitionKey: { name: 'nodeId', type: dynamodb.AttributeType.STRING },
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        timeToLiveAttribute: 'expiresAt',
        removalPolicy: RemovalPolicy.DESTROY,
      }),
      'MediaNodesTable',
    );
    protectTable(mediaNodes);
    // Failed-login and registration counts of the http-api function, shared
    // by all its containers: one item per key (pk), its GCRA value (tat, ms),
    // written with conditional PutItems; items expire (TTL on expiresAt) once
    // they mean nothing.
    const throttles = logicalId(
      new dynamodb.Table(this, 'ThrottlesTable', {
        partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        timeToLiveAttribute: 'expiresAt',
        removalPolicy: RemovalPolicy.DESTROY,
      }),
      'ThrottlesTable',
    );
    protectTable(throttles);
    mediaNodes.addGlobalSecondaryIndex({
      indexName: 'byFleet',
      partitionKey: { name: 'fleet', type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });

    // --------------------------------------------------------- secrets
    // Each is generated here (64 characters, no punctuation); its logical
    // id is its construct id, as the SAM template names it.
    const generatedSecret = (id: string, description: string) =>
      logicalId(
        new secretsmanager.Secret(this, id, {
          description,
          generateSecretString: { passwordLength: 64, excludePunctuation: true },
        }),
        id,
      );
    const jwtSecret = generatedSecret(
      'JwtSecret',
      'Tincan access-token signing secret (TINCAN_JWT_SECRET).',
    );
    const turnSecret = generatedSecret(
      'TurnSecret',
      'TURN REST API secret shared by the functions and the media nodes (TINCAN_TURN_SECRET).',
    );
    const sfuControlSecret = generatedSecret(
      'SfuControlSecret',
      'SFU control-token secret shared by the signaling functions and the media nodes (TINCAN_SFU_CONTROL_SECRET).',
    );
    const apiKeySecret = generatedSecret(
      'ApiKeySecret',
      'Secret of the API key (ApiKeyId) embedding apps sign join tokens with (TINCAN_API_KEYS of ws-connect).',
    );
    const mongoDbUriSecret = logicalId(
      new secretsmanager.Secret(this, 'MongoDbUriSecret', {
        description: 'MongoDB Atlas connection string of the functions (MONGODB_URI).',
        secretStringValue: SecretValue.cfnParameter(params.mongoDbUri),
      }),
      'MongoDbUriSecret',
    );
    // `{{resolve:secretsmanager:ARN:SecretString:::}}`: CloudFormation puts
    // the value into the function's environment at deploy time.
    const resolve = (secret: secretsmanager.Secret) => secret.secretValue.unsafeUnwrap();

    // ----------------------------------------------------- media nodes
    const fleet = defineMediaFleet(
      this,
      params,
      turnSecret,
      sfuControlSecret,
      mediaNodes,
      nodeLogs,
    );
    const turnUrl = Fn.conditionIf(
      hasTurnUrl.logicalId,
      params.turnUrl.valueAsString,
      Fn.sub('${TurnLoadBalancer.DNSName}:3478'),
    ).toString();

    // ---------------------------------------------------------- APIs
    const wsApi = new apigwv2.CfnApi(this, 'WebSocketApi', {
      name: `${Aws.STACK_NAME}-signaling`,
      protocolType: 'WEBSOCKET',
      routeSelectionExpression: '$request.body.action',
    });
    // WebSocket (not HTTP) API logging goes through the account's API Gateway
    // CloudWatch Logs role, one per account and region. Only with
    // ApiGatewayLogRole=create (not the default) does the stack set it, to a
    // role that may write only this stack's WebSocket access log: that
    // replaces the role for every API in the region, and deleting the stack
    // leaves the setting naming the deleted role (docs/deploy.md).
    const apiGatewayLogsRole = new iam.CfnRole(this, 'ApiGatewayLogsRole', {
      assumeRolePolicyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Principal: { Service: 'apigateway.amazonaws.com' },
            Action: 'sts:AssumeRole',
          },
        ],
      },
      policies: [
        {
          policyName: 'access-logs',
          policyDocument: {
            Version: '2012-10-17',
            Statement: [
              {
                Sid: 'Logs',
                Effect: 'Allow',
                Action: ['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
                Resource: wsAccessLogs.logGroupArn,
              },
            ],
          },
        },
      ],
    });
    apiGatewayLogsRole.cfnOptions.condition = createApiGatewayLogRole;
    const apiGatewayAccount = new apigw.CfnAccount(this, 'ApiGatewayAccount', {
      cloudWatchRoleArn: apiGatewayLogsRole.attrArn,
    });
    apiGatewayAccount.cfnOptions.condition = createApiGatewayLogRole;
    const wsStage = new apigwv2.CfnStage(this, 'WebSocketStage', {
      apiId: wsApi.ref,
      stageName: params.stageName.valueAsString,
      autoDeploy: true,
      defaultRouteSettings: { throttlingBurstLimit: 500, throttlingRateLimit: 1000 },
      // Only with ApiGatewayLogRole existing or create: WebSocket logging
      // needs the account's API Gateway CloudWatch Logs role.
      accessLogSettings: Fn.conditionIf(
        webSocketAccessLogs.logicalId,
        { DestinationArn: wsAccessLogs.logGroupArn, Format: WS_ACCESS_LOG_FORMAT },
        Aws.NO_VALUE,
      ) as unknown as apigwv2.CfnStage.AccessLogSettingsProperty,
    });
    // Waits for the account's log role when the stack sets it (a DependsOn
    // cannot name a resource that may not exist; a reference here can).
    wsStage.cfnOptions.metadata = {
      LogRoleReady: Fn.conditionIf(createApiGatewayLogRole.logicalId, apiGatewayAccount.ref, ''),
    };
    const httpApi = new apigwv2.CfnApi(this, 'HttpApi', {
      name: `${Aws.STACK_NAME}-http`,
      protocolType: 'HTTP',
    });
    new apigwv2.CfnStage(this, 'HttpApiStage', {
      apiId: httpApi.ref,
      stageName: '$default',
      autoDeploy: true,
      defaultRouteSettings: { throttlingBurstLimit: 200, throttlingRateLimit: 500 },
      accessLogSettings: {
        destinationArn: httpAccessLogs.logGroupArn,
        format: HTTP_ACCESS_LOG_FORMAT,
      },
    });

    // --------------------------------------------------------- web app
    const web = defineWebApp(this, params, httpApi, wsApi);
    const hasCorsOrigins = new CfnCondition(this, 'HasCorsOrigins', {
      expression: Fn.conditionNot(Fn.conditionEquals(params.corsOrigins.valueAsString, '')),
    });

    // ----------------------------------------------------- functions
    const wsLogGroups = WS_ROUTES.map((r) => logGroup(`${r.fn}LogGroup`, r.binary));
    const sweepLogGroup = logGroup('WsSweepLogGroup', 'ws-sweep');
    const httpLogGroup = logGroup('HttpApiLogGroup', 'http-api');

    const lambdaTrust = new iam.ServicePrincipal('lambda.amazonaws.com');
    // The three WebSocket functions and the sweep share one role: they use the
    // same store (any of them may add, move or remove a connection) and push to
    // the same API.
    const signalingRole = logicalId(
      new iam.Role(this, 'SignalingRole', {
        assumedBy: lambdaTrust,
        inlinePolicies: {
          signaling: new iam.PolicyDocument({
            statements: [
              new iam.PolicyStatement({
                sid: 'Logs',
                actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
                resources: [...wsLogGroups, sweepLogGroup].map((g) => g.logGroupArn),
              }),
              new iam.PolicyStatement({
                sid: 'Connections',
                actions: [
                  'dynamodb:GetItem',
                  'dynamodb:BatchGetItem',
                  'dynamodb:PutItem',
                  'dynamodb:UpdateItem',
                  'dynamodb:DeleteItem',
                  // The deleted-user check inside $connect's TransactWriteItems.
                  'dynamodb:ConditionCheckItem',
                  // ws-sweep's read of every room item, once a SweepSchedule.
                  'dynamodb:Scan',
                ],
                resources: [connections.tableArn],
              }),
              new iam.PolicyStatement({
                sid: 'ConnectionsByRoom',
                actions: ['dynamodb:Query'],
                resources: [`${connections.tableArn}/index/byRoom`],
              }),
              new iam.PolicyStatement({
                sid: 'RoomPlacement',
                actions: ['dynamodb:GetItem', 'dynamodb:PutItem'],
                resources: [mediaNodes.tableArn],
              }),
              new iam.PolicyStatement({
                sid: 'LiveMediaNodes',
                actions: ['dynamodb:Query'],
                resources: [`${mediaNodes.tableArn}/index/byFleet`],
              }),
              new iam.PolicyStatement({
                sid: 'PushToConnections',
                actions: ['execute-api:ManageConnections'],
                resources: [
                  `arn:${Aws.PARTITION}:execute-api:${Aws.REGION}:${Aws.ACCOUNT_ID}:${wsApi.ref}/${params.stageName.valueAsString}/*/@connections/*`,
                ],
              }),
            ],
          }),
        },
      }),
      'SignalingRole',
    );
    const httpApiRole = logicalId(
      new iam.Role(this, 'HttpApiRole', {
        assumedBy: lambdaTrust,
        inlinePolicies: {
          'http-api': new iam.PolicyDocument({
            statements: [
              new iam.PolicyStatement({
                sid: 'Logs',
                actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
                resources: [httpLogGroup.logGroupArn],
              }),
              new iam.PolicyStatement({
                sid: 'DeletedUsers',
                // A deleted account's or revoked session's marker, which
                // $connect checks.
                actions: ['dynamodb:PutItem'],
                resources: [connections.tableArn],
              }),
              new iam.PolicyStatement({
                sid: 'RoomPlacement',
                actions: ['dynamodb:GetItem'],
                resources: [mediaNodes.tableArn],
              }),
              new iam.PolicyStatement({
                sid: 'LiveMediaNodes',
                actions: ['dynamodb:Query'],
                resources: [`${mediaNodes.tableArn}/index/byFleet`],
              }),
              new iam.PolicyStatement({
                sid: 'Throttles',
                // Failed-login and registration counts: a read, then a
                // conditional write.
                actions: ['dynamodb:GetItem', 'dynamodb:PutItem'],
                resources: [throttles.tableArn],
              }),
            ],
          }),
        },
      }),
      'HttpApiRole',
    );

    const architecture = lambda.Architecture.custom(params.lambdaArchitecture.valueAsString);
    // cargo-lambda writes <binary>/bootstrap, or <binary>/bootstrap.zip
    // with --output-format zip; either is a Lambda asset as it is.
    const code = (binary: string) => {
      const dir = path.join(props.lambdaDir, binary);
      const zip = path.join(dir, 'bootstrap.zip');
      if (existsSync(zip)) {
        return lambda.Code.fromAsset(zip);
      }
      if (!existsSync(path.join(dir, 'bootstrap'))) {
        throw new Error(
          `${dir}/bootstrap is missing: run \`cargo lambda build --release --arm64 -p tincan-functions\` ` +
            'first, or pass -c lambdaDir=DIR',
        );
      }
      return lambda.Code.fromAsset(dir);
    };
    // Gradual deployments, as SAM's AutoPublishAlias + DeploymentPreference
    // write them (same logical IDs): each function publishes a version per
    // change of code or configuration, API Gateway invokes its alias `live`,
    // and CodeDeploy shifts the alias to the new version by
    // LambdaDeploymentType, rolling back when the function's DeployAlarm
    // fires. L1 resources rather than codedeploy.LambdaDeploymentGroup, whose
    // application, role and rollback events differ from SAM's: the two
    // templates stay the same resource for resource.
    const deployApplication = new codedeploy.CfnApplication(this, 'ServerlessDeploymentApplication', {
      computePlatform: 'Lambda',
    });
    const deployRole = new iam.CfnRole(this, 'CodeDeployServiceRole', {
      assumeRolePolicyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Action: ['sts:AssumeRole'],
            Effect: 'Allow',
            Principal: { Service: ['codedeploy.amazonaws.com'] },
          },
        ],
      },
      managedPolicyArns: [
        `arn:${Aws.PARTITION}:iam::aws:policy/service-role/AWSCodeDeployRoleForLambda`,
      ],
    });
    /** The alias `live` of `fn` (SAM's <Function>Aliaslive), deployed gradually. */
    const liveAlias = (id: string, fn: lambda.Function) => {
      const version = fn.currentVersion;
      const versionResource = version.node.defaultChild as CfnResource;
      // Kept, as SAM keeps them: the alias may still point at an old one.
      versionResource.cfnOptions.deletionPolicy = CfnDeletionPolicy.RETAIN;
      versionResource.addDeletionOverride('UpdateReplacePolicy');
      const group = new codedeploy.CfnDeploymentGroup(this, `${id}DeploymentGroup`, {
        applicationName: deployApplication.ref,
        serviceRoleArn: deployRole.attrArn,
        deploymentConfigName: Fn.sub('CodeDeployDefault.Lambda${ConfigName}', {
          ConfigName: params.lambdaDeploymentType.valueAsString,
        }),
        deploymentStyle: { deploymentType: 'BLUE_GREEN', deploymentOption: 'WITH_TRAFFIC_CONTROL' },
        alarmConfiguration: { enabled: true, alarms: [{ name: Fn.ref(`${id.replace(/Function$/, '')}DeployAlarm`) }] },
        autoRollbackConfiguration: {
          enabled: true,
          events: ['DEPLOYMENT_FAILURE', 'DEPLOYMENT_STOP_ON_ALARM', 'DEPLOYMENT_STOP_ON_REQUEST'],
        },
      });
      const alias = new lambda.CfnAlias(this, `${id}Aliaslive`, {
        name: 'live',
        functionName: fn.functionName,
        functionVersion: version.version,
      });
      alias.cfnOptions.updatePolicy = {
        codeDeployLambdaAliasUpdate: {
          applicationName: deployApplication.ref,
          deploymentGroupName: group.ref,
        },
      };
      return alias;
    };
    const rustFunction = (
      id: string,
      binary: string,
      description: string,
      memorySize: number,
      role: iam.IRole,
      logGroupOf: logs.ILogGroup,
      environment: Record<string, string>,
    ) => {
      const fn = logicalId(
        new lambda.Function(this, id, {
          description,
          runtime: lambda.Runtime.PROVIDED_AL2023,
          handler: 'bootstrap',
          architecture,
          code: code(binary),
          memorySize,
          timeout: Duration.seconds(10),
          role,
          logGroup: logGroupOf,
          environment,
        }),
        id,
      );
      // The GetAtt of the role already orders them (cfn-lint W3005).
      (fn.node.defaultChild as CfnResource).addDeletionOverride('DependsOn');
      // Caps the MongoDB connections its containers open (docs/deploy.md).
      if (environment.MONGODB_URI) {
        (fn.node.defaultChild as CfnResource).addPropertyOverride(
          'ReservedConcurrentExecutions',
          Fn.conditionIf(
            reserveMongoDbConcurrency.logicalId,
            params.mongoDbFunctionConcurrency.valueAsNumber,
            Aws.NO_VALUE,
          ),
        );
      }
      return fn;
    };

    const signalingEnv = {
      TINCAN_JWT_SECRET: resolve(jwtSecret),
      TINCAN_CONNECTIONS_TABLE: connections.tableName,
      TINCAN_ROOM_MAX: params.roomMax.valueAsString,
      // Rooms past this many go to the SFU of their media node.
      TINCAN_MESH_MAX: params.meshMax.valueAsString,
      TINCAN_SFU_SLOTS: params.sfuSlots.valueAsString,
      TINCAN_MAX_MESSAGE: params.maxMessageBytes.valueAsString,
      // Per-socket message budget and sockets per user, enforced here (the
      // budget is kept with the connection in DynamoDB).
      TINCAN_MSG_RATE: params.messageRate.valueAsString,
      TINCAN_MSG_BURST: params.messageBurst.valueAsString,
      TINCAN_MAX_SOCKETS_PER_USER: params.maxSocketsPerUser.valueAsString,
      // A participant whose socket drops may resume within this many seconds.
      TINCAN_RESUME_GRACE_SECS: '30',
      TINCAN_TURN_SECRET: resolve(turnSecret),
      TINCAN_TURN_URL: turnUrl,
      TINCAN_TURN_TTL: params.turnCredentialTtl.valueAsString,
      // Each room goes to a live, least-loaded media node from the fleet
      // registry; TINCAN_TURN_URL is the fallback when none is alive.
      TINCAN_MEDIA_NODES_TABLE: mediaNodes.tableName,
      RUST_LOG: params.logLevel.valueAsString,
    };
    // $disconnect's and $default's: $connect's, and MongoDB ($connect opens
    // no MongoDB client).
    const callHistoryEnv = {
      ...signalingEnv,
      // Signs the tokens of the media nodes' SFU control API.
      TINCAN_SFU_CONTROL_SECRET: resolve(sfuControlSecret),
      // Call history (who was in which room, how long) goes to MongoDB.
      MONGODB_URI: resolve(mongoDbUriSecret),
      TINCAN_MONGODB_DB: params.mongoDbDatabase.valueAsString,
      TINCAN_MONGODB_TIMEOUT_MS: '3000',
      // One event at a time per container: a small pool, no idle checks.
      TINCAN_MONGODB_MAX_POOL: '2',
      TINCAN_MONGODB_HEARTBEAT_MS: '10000',
    };
    WS_ROUTES.forEach((route, i) => {
      const fn = rustFunction(
        `${route.fn}Function`,
        route.binary,
        route.description,
        256,
        signalingRole,
        wsLogGroups[i],
        route.binary === 'ws-connect'
          ? {
              ...signalingEnv,
              // Join tokens of embedding apps (docs/embedding.md): id:secret.
              TINCAN_API_KEYS: Fn.join(':', [params.apiKeyId.valueAsString, resolve(apiKeySecret)]),
            }
          : callHistoryEnv,
      );
      const alias = liveAlias(`${route.fn}Function`, fn);
      // The alias, never the function: API Gateway calls whichever version
      // CodeDeploy has shifted `live` to.
      const integration = new apigwv2.CfnIntegration(this, `${route.name}Integration`, {
        apiId: wsApi.ref,
        integrationType: 'AWS_PROXY',
        integrationUri: `arn:${Aws.PARTITION}:apigateway:${Aws.REGION}:lambda:path/2015-03-31/functions/${alias.ref}/invocations`,
      });
      new apigwv2.CfnRoute(this, `${route.name}Route`, {
        apiId: wsApi.ref,
        routeKey: route.routeKey,
        // $connect checks the token itself (401 refuses the upgrade).
        authorizationType: route.routeKey === '$connect' ? 'NONE' : undefined,
        target: `integrations/${integration.ref}`,
      });
      new lambda.CfnPermission(this, `${route.fn}Permission`, {
        action: 'lambda:InvokeFunction',
        functionName: alias.ref,
        principal: 'apigateway.amazonaws.com',
        sourceArn: `arn:${Aws.PARTITION}:execute-api:${Aws.REGION}:${Aws.ACCOUNT_ID}:${wsApi.ref}/*/${route.routeKey}`,
      });
    });

    // The scheduled sweep: $default's environment, and the Management API
    // its rooms hear `peer-left` through (a scheduled event names none).
    const sweepFn = rustFunction(
      'WsSweepFunction',
      'ws-sweep',
      'Tincan sweep - ends participants gone for good in rooms nobody reads again, closes their visits.',
      256,
      signalingRole,
      sweepLogGroup,
      {
        ...callHistoryEnv,
        TINCAN_WS_ENDPOINT: `https://${wsApi.ref}.execute-api.${Aws.REGION}.${Aws.URL_SUFFIX}/${params.stageName.valueAsString}`,
      },
    );
    const sweepCfn = sweepFn.node.defaultChild as CfnResource;
    // A scan of the room items, and a room told per participant ended.
    sweepCfn.addPropertyOverride('Timeout', 60);
    // One container at a time: sweeps never overlap, and it holds one
    // MongoDB pool at most (docs/deploy.md).
    sweepCfn.addPropertyOverride('ReservedConcurrentExecutions', 1);
    const sweepAlias = liveAlias('WsSweepFunction', sweepFn);
    // ws-sweep's schedule: EventBridge invokes its alias `live`.
    const sweepRule = new events.CfnRule(this, 'SweepRule', {
      description: 'Tincan - runs ws-sweep every SweepSchedule.',
      scheduleExpression: params.sweepSchedule.valueAsString,
      state: 'ENABLED',
      targets: [{ id: 'ws-sweep', arn: sweepAlias.ref }],
    });
    new lambda.CfnPermission(this, 'SweepPermission', {
      action: 'lambda:InvokeFunction',
      functionName: sweepAlias.ref,
      principal: 'events.amazonaws.com',
      sourceArn: sweepRule.attrArn,
    });

    const httpFn = rustFunction(
      'HttpApiFunction',
      'http-api',
      'Tincan HTTP API - accounts, sessions, preferences, call history, TURN credentials.',
      // argon2id is CPU-bound and Lambda's CPU share grows with memory.
      1024,
      httpApiRole,
      httpLogGroup,
      {
        TINCAN_JWT_SECRET: resolve(jwtSecret),
        TINCAN_ACCESS_TTL: params.accessTokenTtl.valueAsString,
        TINCAN_REFRESH_TTL: params.refreshTokenTtl.valueAsString,
        MONGODB_URI: resolve(mongoDbUriSecret),
        TINCAN_MONGODB_DB: params.mongoDbDatabase.valueAsString,
        TINCAN_MONGODB_TIMEOUT_MS: '3000',
        TINCAN_MONGODB_MAX_POOL: '2',
        TINCAN_MONGODB_HEARTBEAT_MS: '10000',
        // A deleted account gets a marker here, so its tokens open no socket.
        TINCAN_CONNECTIONS_TABLE: connections.tableName,
        TINCAN_TURN_SECRET: resolve(turnSecret),
        TINCAN_TURN_URL: turnUrl,
        TINCAN_TURN_TTL: params.turnCredentialTtl.valueAsString,
        // Default: exactly the web app's origin (AppUrl without its slash).
        TINCAN_CORS_ORIGINS: Fn.conditionIf(
          hasCorsOrigins.logicalId,
          params.corsOrigins.valueAsString,
          web.origin,
        ).toString(),
        // /turn-credentials hands out the caller's room's node (or the
        // least-loaded live one), TINCAN_TURN_URL when none is alive.
        TINCAN_MEDIA_NODES_TABLE: mediaNodes.tableName,
        // Failed-login and registration counts, shared by all containers.
        TINCAN_THROTTLES_TABLE: throttles.tableName,
        RUST_LOG: params.logLevel.valueAsString,
      },
    );
    const httpAlias = liveAlias('HttpApiFunction', httpFn);
    const httpIntegration = new apigwv2.CfnIntegration(this, 'HttpApiIntegration', {
      apiId: httpApi.ref,
      integrationType: 'AWS_PROXY',
      // The alias `live` (its ARN), which CodeDeploy moves between versions.
      integrationUri: httpAlias.ref,
      payloadFormatVersion: '2.0',
    });
    for (const [id, routeKey] of HTTP_ROUTES) {
      new apigwv2.CfnRoute(this, id, {
        apiId: httpApi.ref,
        routeKey,
        target: `integrations/${httpIntegration.ref}`,
      });
    }
    new lambda.CfnPermission(this, 'HttpApiPermission', {
      action: 'lambda:InvokeFunction',
      functionName: httpAlias.ref,
      principal: 'apigateway.amazonaws.com',
      sourceArn: `arn:${Aws.PARTITION}:execute-api:${Aws.REGION}:${Aws.ACCOUNT_ID}:${httpApi.ref}/*`,
    });

    // -------------------------------------------------------- watching
    // Alarms notify AlarmTopic (and AlarmEmail, if given); one dashboard.
    defineMonitoring(this, { HasAlarmEmail: hasAlarmEmail });

    // --------------------------------------------------------- outputs
    const wsHost = `${wsApi.ref}.execute-api.${Aws.REGION}.${Aws.URL_SUFFIX}/${params.stageName.valueAsString}`;
    new CfnOutput(this, 'WebSocketUrl', {
      description: 'Signaling WebSocket (connect with ?token=ACCESS_TOKEN).',
      value: `wss://${wsHost}`,
    });
    new CfnOutput(this, 'HttpApiUrl', {
      description: 'HTTP API base URL (POST /auth/login, GET /me, ...).',
      value: httpApi.attrApiEndpoint,
    });
    deployWebApp(this, web, {
      httpApiUrl: httpApi.attrApiEndpoint,
      webSocketUrl: `wss://${wsHost}`,
    });
    new CfnOutput(this, 'AppUrl', {
      description:
        'The web app - open it, sign up, call. Its /settings.json names the two APIs above.',
      value: Fn.conditionIf(
        web.hasAppDomain.logicalId,
        `https://${params.appDomainName.valueAsString}/`,
        `https://${web.distribution.attrDomainName}/`,
      ).toString(),
    });
    new CfnOutput(this, 'AppDistributionDomainName', {
      description:
        "CloudFront name of the web app (point AppDomainName's CNAME or alias here).",
      value: web.distribution.attrDomainName,
    });
    new CfnOutput(this, 'AppDistributionId', { value: web.distribution.ref });
    new CfnOutput(this, 'WebBucketName', {
      description: "The web app's private bucket (emptied when the stack is deleted).",
      value: web.bucket.ref,
    });
    new CfnOutput(this, 'TurnServerUrl', {
      description: 'TURN host:port handed to browsers.',
      value: turnUrl,
    });
    new CfnOutput(this, 'ConnectionsTableName', { value: connections.tableName });
    new CfnOutput(this, 'MediaNodesTableName', { value: mediaNodes.tableName });
    new CfnOutput(this, 'MediaNodeGroupName', { value: fleet.group.ref });
    new CfnOutput(this, 'JwtSecretArn', { value: jwtSecret.secretArn });
    new CfnOutput(this, 'ApiKeySecretArn', {
      description:
        "Secret of the API key ApiKeyId; embedding apps' backends sign join tokens with it (docs/embedding.md).",
      value: apiKeySecret.secretArn,
    });
    new CfnOutput(this, 'TurnSecretArn', { value: turnSecret.secretArn });
    new CfnOutput(this, 'TurnTlsUrl', {
      description:
        'TURN over TLS URL the nodes advertise (point TurnTlsDomain at TurnLoadBalancerDnsName).',
      value: Fn.conditionIf(
        fleet.hasTurnTls.logicalId,
        Fn.sub('turns:${TurnTlsDomain}:443?transport=tcp'),
        'off (no TurnTlsDomain)',
      ).toString(),
    });
    new CfnOutput(this, 'TurnLoadBalancerDnsName', {
      value: fleet.turnLoadBalancer.attrDnsName,
    });
    new CfnOutput(this, 'AlarmTopicArn', {
      description: 'SNS topic of the alarms; subscribe more endpoints to it.',
      value: Fn.ref('AlarmTopic'),
    });
    new CfnOutput(this, 'DashboardUrl', {
      description: "The stack's CloudWatch dashboard.",
      value: Fn.sub(
        'https://${AWS::Region}.console.aws.amazon.com/cloudwatch/home?region=${AWS::Region}#dashboards:name=${Dashboard}',
      ),
    });
  }
}
