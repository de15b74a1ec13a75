// The media-node fleet: a TURN load balancer in front of an Auto Scaling
// group of EC2 instances running tincan-media-node under systemd. Same
// resources and logical IDs as the media-node part of ../template.yaml.

import { readFileSync } from 'node:fs';
import * as path from 'node:path';

import { Aws, CfnCondition, CfnResource, Fn, Stack } from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { IConstruct } from 'constructs';

import { TincanParameters } from './parameters';

/** Gives an L2 construct's resource (or an L1) the logical ID template.yaml uses. */
export function logicalId<T extends IConstruct>(construct: T, id: string): T {
  const resource = (construct.node.defaultChild ?? construct) as CfnResource;
  resource.overrideLogicalId(id);
  return construct;
}

/** The name of the lifecycle hook the instances complete after draining. */
const DRAIN_HOOK = 'tincan-drain';
/** Where the nodes publish their load, and what the scaling policy follows. */
const METRIC_NAMESPACE = 'Tincan/MediaNode';
/** The nodes' load: TURN allocations plus SFU participants (tincan_node_load). */
const METRIC_NAME = 'Load';
const TURN_PORT = 3478;
/** The nodes' TURN-over-TLS port, behind the load balancer's 443. */
const TLS_NODE_PORT = 5349;
/** The SFU's media port and control API (docs/sfu.md). */
const SFU_MEDIA_PORT = 3479;
const SFU_CONTROL_PORT = 7881;
/** The nodes' /metrics and /healthz, which the load balancer's health check asks. */
const HEALTH_PORT = 9100;
/** Where the load balancer's health checks come from: its private addresses in the VPC. */
const PRIVATE_RANGES = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'];

export interface MediaFleet {
  /** The load balancer's TURN address, host:port. */
  turnLoadBalancer: elbv2.CfnLoadBalancer;
  group: autoscaling.CfnAutoScalingGroup;
  /** TurnTlsDomain is set. */
  hasTurnTls: CfnCondition;
}

export function defineMediaFleet(
  stack: Stack,
  params: TincanParameters,
  turnSecret: secretsmanager.Secret,
  sfuControlSecret: secretsmanager.Secret,
  mediaNodes: dynamodb.Table,
  nodeLogs: logs.LogGroup,
): MediaFleet {
  const groupName = `${Aws.STACK_NAME}-media-nodes`;
  const hasTurnTls = new CfnCondition(stack, 'HasTurnTls', {
    expression: Fn.conditionNot(Fn.conditionEquals(params.turnTlsDomain.valueAsString, '')),
  });
  const ifTls = (value: unknown) => Fn.conditionIf(hasTurnTls.logicalId, value, Aws.NO_VALUE);

  const securityGroup = new ec2.CfnSecurityGroup(stack, 'MediaNodeSecurityGroup', {
    groupDescription:
      'Tincan media nodes - TURN on 3478 UDP and TCP, UDP relay ports, SFU media on 3479 UDP and its control API on 7881 TCP, health checks on 9100 TCP from private addresses',
    vpcId: params.vpcId.valueAsString,
    securityGroupIngress: [
      { ipProtocol: 'udp', fromPort: TURN_PORT, toPort: TURN_PORT, cidrIp: '0.0.0.0/0', description: 'TURN over UDP' },
      { ipProtocol: 'tcp', fromPort: TURN_PORT, toPort: TURN_PORT, cidrIp: '0.0.0.0/0', description: 'TURN over TCP' },
      {
        ipProtocol: 'udp',
        fromPort: params.relayPortMin.valueAsNumber,
        toPort: params.relayPortMax.valueAsNumber,
        cidrIp: '0.0.0.0/0',
        description: 'TURN relay ports',
      },
      { ipProtocol: 'udp', fromPort: SFU_MEDIA_PORT, toPort: SFU_MEDIA_PORT, cidrIp: '0.0.0.0/0', description: 'SFU media (one port for every participant)' },
      // The signaling Lambdas run outside the VPC: every control request
      // carries a token for that one request, used once, signed with the
      // SFU control secret; connections are capped per address (docs/sfu.md).
      { ipProtocol: 'tcp', fromPort: SFU_CONTROL_PORT, toPort: SFU_CONTROL_PORT, cidrIp: '0.0.0.0/0', description: 'SFU control API (token-authenticated)' },
      // The load balancer's health check asks the node's /healthz (503 while
      // draining) from its own private addresses in the VPC: open to the
      // private ranges only, never to the internet.
      ...PRIVATE_RANGES.map((cidrIp) => ({
        ipProtocol: 'tcp',
        fromPort: HEALTH_PORT,
        toPort: HEALTH_PORT,
        cidrIp,
        description: 'Load balancer health check (/healthz) from the VPC',
      })),
      ifTls({
        IpProtocol: 'tcp',
        FromPort: TLS_NODE_PORT,
        ToPort: TLS_NODE_PORT,
        CidrIp: '0.0.0.0/0',
        Description: "TURN over TLS through the load balancer's 443",
      }),
    ],
  });

  const role = logicalId(
    new iam.Role(stack, 'MediaNodeRole', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      inlinePolicies: {
        'media-node': new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              sid: 'Binary',
              actions: ['s3:GetObject'],
              resources: [
                `arn:${Aws.PARTITION}:s3:::${params.mediaNodeArtifactBucket.valueAsString}/${params.mediaNodeArtifactKey.valueAsString}`,
              ],
            }),
            new iam.PolicyStatement({
              sid: 'TurnSecret',
              actions: ['secretsmanager:GetSecretValue'],
              resources: [turnSecret.secretArn],
            }),
            // Only with TurnTlsDomain: the node's certificate (replaced below
            // by the same statement inside an Fn::If, as template.yaml has it).
            new iam.PolicyStatement({
              sid: 'TlsCertificate',
              actions: ['secretsmanager:GetSecretValue'],
              resources: [
                `arn:${Aws.PARTITION}:secretsmanager:${Aws.REGION}:${Aws.ACCOUNT_ID}:secret:${params.turnTlsCertificateSecret.valueAsString}-??????`,
              ],
            }),
            new iam.PolicyStatement({
              sid: 'SfuControlSecret',
              actions: ['secretsmanager:GetSecretValue'],
              resources: [sfuControlSecret.secretArn],
            }),
            new iam.PolicyStatement({
              sid: 'FleetHeartbeat',
              actions: ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem'],
              resources: [mediaNodes.tableArn],
            }),
            new iam.PolicyStatement({
              sid: 'Drain',
              actions: [
                'autoscaling:CompleteLifecycleAction',
                'autoscaling:RecordLifecycleActionHeartbeat',
                'autoscaling:SetInstanceProtection',
              ],
              resources: [
                `arn:${Aws.PARTITION}:autoscaling:${Aws.REGION}:${Aws.ACCOUNT_ID}:autoScalingGroup:*:autoScalingGroupName/${groupName}`,
              ],
            }),
            // The user data reports the node's start to the group's CreationPolicy.
            new iam.PolicyStatement({
              sid: 'ReadySignal',
              actions: ['cloudformation:SignalResource'],
              resources: [
                `arn:${Aws.PARTITION}:cloudformation:${Aws.REGION}:${Aws.ACCOUNT_ID}:stack/${Aws.STACK_NAME}/*`,
              ],
            }),
            new iam.PolicyStatement({
              sid: 'NodeLogs',
              actions: ['logs:CreateLogStream', 'logs:PutLogEvents', 'logs:DescribeLogStreams'],
              resources: [nodeLogs.logGroupArn],
            }),
            // Session Manager (`aws ssm start-session`): the agent's
            // channels have no resource-level permissions in AWS.
            new iam.PolicyStatement({
              sid: 'SessionManager',
              actions: [
                'ssm:UpdateInstanceInformation',
                'ssmmessages:CreateControlChannel',
                'ssmmessages:CreateDataChannel',
                'ssmmessages:OpenControlChannel',
                'ssmmessages:OpenDataChannel',
              ],
              resources: ['*'],
            }),
            // PutMetricData has no resource-level permissions: AWS requires
            // Resource "*". The condition pins it to our namespace.
            new iam.PolicyStatement({
              sid: 'LoadMetric',
              actions: ['cloudwatch:PutMetricData'],
              resources: ['*'],
              conditions: { StringEquals: { 'cloudwatch:namespace': METRIC_NAMESPACE } },
            }),
          ],
        }),
      },
    }),
    'MediaNodeRole',
  );

  // The TlsCertificate statement (third) exists only with TurnTlsDomain.
  (role.node.defaultChild as iam.CfnRole).addPropertyOverride(
    'Policies.0.PolicyDocument.Statement.2',
    ifTls({
      Sid: 'TlsCertificate',
      Effect: 'Allow',
      Action: 'secretsmanager:GetSecretValue',
      Resource: `arn:${Aws.PARTITION}:secretsmanager:${Aws.REGION}:${Aws.ACCOUNT_ID}:secret:${params.turnTlsCertificateSecret.valueAsString}-??????`,
    }),
  );

  const profile = new iam.CfnInstanceProfile(stack, 'MediaNodeInstanceProfile', {
    roles: [role.roleName],
  });

  // One script for both templates: template.yaml inlines the same text
  // (tests/infra/test_templates.py compares them).
  const userData = readFileSync(path.join(__dirname, 'media-node-user-data.sh'), 'utf8');
  const launchTemplate = new ec2.CfnLaunchTemplate(stack, 'MediaNodeLaunchTemplate', {
    launchTemplateData: {
      imageId: params.mediaNodeImageId.valueAsString,
      instanceType: params.mediaNodeInstanceType.valueAsString,
      iamInstanceProfile: { arn: profile.attrArn },
      metadataOptions: { httpTokens: 'required', httpPutResponseHopLimit: 1, httpEndpoint: 'enabled' },
      networkInterfaces: [
        { deviceIndex: 0, associatePublicIpAddress: true, groups: [securityGroup.attrGroupId] },
      ],
      tagSpecifications: [
        { resourceType: 'instance', tags: [{ key: 'Name', value: `${Aws.STACK_NAME}-media-node` }] },
      ],
      userData: Fn.base64(Fn.sub(userData)),
    },
  });

  const turnLoadBalancer = new elbv2.CfnLoadBalancer(stack, 'TurnLoadBalancer', {
    type: 'network',
    scheme: 'internet-facing',
    subnets: params.subnetIds.valueAsList,
  });
  const targetGroup = new elbv2.CfnTargetGroup(stack, 'TurnTargetGroup', {
    vpcId: params.vpcId.valueAsString,
    protocol: 'TCP_UDP',
    port: TURN_PORT,
    targetType: 'instance',
    // The node itself says whether it takes new calls: /healthz answers
    // 503 once it drains, so new flows go elsewhere (AWS never cuts UDP
    // or TCP_UDP flows to an unhealthy target).
    healthCheckProtocol: 'HTTP',
    healthCheckPort: String(HEALTH_PORT),
    healthCheckPath: '/healthz',
    matcher: { httpCode: '200' },
    healthCheckIntervalSeconds: 10,
    healthyThresholdCount: 2,
    unhealthyThresholdCount: 2,
    // A draining node's flows through the load balancer go on until the
    // node closes them (TCP_UDP would otherwise cut them when
    // deregistration ends).
    targetGroupAttributes: [
      { key: 'deregistration_delay.timeout_seconds', value: '30' },
      { key: 'deregistration_delay.connection_termination.enabled', value: 'false' },
    ],
  });
  new elbv2.CfnListener(stack, 'TurnListener', {
    loadBalancerArn: turnLoadBalancer.ref,
    protocol: 'TCP_UDP',
    port: TURN_PORT,
    defaultActions: [{ type: 'forward', targetGroupArn: targetGroup.ref }],
  });

  // TURN over TLS: TCP 443 on the load balancer, passed through (TLS ends
  // on the node, which keeps the client's address) to the nodes' 5349.
  const tlsTargetGroup = new elbv2.CfnTargetGroup(stack, 'TurnTlsTargetGroup', {
    vpcId: params.vpcId.valueAsString,
    protocol: 'TCP',
    port: TLS_NODE_PORT,
    targetType: 'instance',
    healthCheckProtocol: 'HTTP',
    healthCheckPort: String(HEALTH_PORT),
    healthCheckPath: '/healthz',
    matcher: { httpCode: '200' },
    healthCheckIntervalSeconds: 10,
    healthyThresholdCount: 2,
    unhealthyThresholdCount: 2,
    // A draining node turns unhealthy; its TLS sessions through the load
    // balancer go on for the drain grace instead of being reset then.
    targetGroupAttributes: [
      { key: 'deregistration_delay.timeout_seconds', value: '30' },
      { key: 'deregistration_delay.connection_termination.enabled', value: 'false' },
      { key: 'target_health_state.unhealthy.connection_termination.enabled', value: 'false' },
      {
        key: 'target_health_state.unhealthy.draining_interval_seconds',
        value: params.drainGraceSeconds.valueAsString,
      },
    ],
  });
  tlsTargetGroup.cfnOptions.condition = hasTurnTls;
  const tlsListener = new elbv2.CfnListener(stack, 'TurnTlsListener', {
    loadBalancerArn: turnLoadBalancer.ref,
    protocol: 'TCP',
    port: 443,
    defaultActions: [{ type: 'forward', targetGroupArn: tlsTargetGroup.ref }],
  });
  tlsListener.cfnOptions.condition = hasTurnTls;

  const group = new autoscaling.CfnAutoScalingGroup(stack, 'MediaNodeGroup', {
    autoScalingGroupName: groupName,
    minSize: params.mediaNodeMinSize.valueAsString,
    maxSize: params.mediaNodeMaxSize.valueAsString,
    vpcZoneIdentifier: params.subnetIds.valueAsList,
    launchTemplate: {
      launchTemplateId: launchTemplate.ref,
      version: launchTemplate.attrLatestVersionNumber,
    },
    targetGroupArns: Fn.conditionIf(
      hasTurnTls.logicalId,
      [targetGroup.ref, tlsTargetGroup.ref],
      [targetGroup.ref],
    ) as unknown as string[],
    healthCheckType: 'ELB',
    healthCheckGracePeriod: 120,
    // Replacements (instance refresh, health) launch the new node before
    // the old one starts draining.
    instanceMaintenancePolicy: { minHealthyPercentage: 100, maxHealthyPercentage: 200 },
    // For the alarms: in service against the group's bounds.
    metricsCollection: [
      {
        granularity: '1Minute',
        metrics: ['GroupInServiceInstances', 'GroupDesiredCapacity', 'GroupMinSize', 'GroupMaxSize'],
      },
    ],
    lifecycleHookSpecificationList: [
      {
        lifecycleHookName: DRAIN_HOOK,
        lifecycleTransition: 'autoscaling:EC2_INSTANCE_TERMINATING',
        heartbeatTimeout: 300,
        defaultResult: 'CONTINUE',
      },
    ],
  });

  // The stack is complete only when MediaNodeMinSize nodes have each
  // answered a STUN binding on their public address (the user data signals
  // it); a node that cannot start signals FAILURE and says why on its
  // console, and the stack rolls back.
  group.cfnOptions.creationPolicy = {
    resourceSignal: { count: params.mediaNodeMinSize.valueAsNumber, timeout: 'PT15M' },
  };
  // A stack update that changes the nodes (a new MediaNodeArtifactKey and
  // checksum, instance type, image, user data) rolls the group one node at
  // a time, never below MediaNodeMinSize in service: each new node must
  // signal SUCCESS (it answers STUN on its public address) before the next
  // old one is terminated, and terminating drains it (lifecycle hook
  // tincan-drain). A FAILURE or no signal within PauseTime rolls the update
  // back to the previous launch template version.
  group.cfnOptions.updatePolicy = {
    autoScalingRollingUpdate: {
      maxBatchSize: 1,
      minInstancesInService: params.mediaNodeMinSize.valueAsNumber,
      pauseTime: 'PT15M',
      waitOnResourceSignals: true,
      suspendProcesses: ['HealthCheck', 'ReplaceUnhealthy', 'AZRebalance', 'AlarmNotification', 'ScheduledActions'],
    },
  };

  new autoscaling.CfnScalingPolicy(stack, 'MediaNodeScalingPolicy', {
    autoScalingGroupName: group.ref,
    policyType: 'TargetTrackingScaling',
    targetTrackingConfiguration: {
      targetValue: params.loadPerNodeTarget.valueAsNumber,
      customizedMetricSpecification: {
        namespace: METRIC_NAMESPACE,
        metricName: METRIC_NAME,
        dimensions: [{ name: 'AutoScalingGroupName', value: group.ref }],
        statistic: 'Average',
        unit: 'Count',
      },
    },
  });

  return { turnLoadBalancer, group, hasTurnTls };
}
