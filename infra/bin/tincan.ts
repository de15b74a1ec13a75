#!/usr/bin/env node
// The CDK app: one stack, the same as ../template.yaml.
//
//   npx cdk synth                       # CloudFormation template in cdk.out/
//   npx cdk deploy --parameters MongoDbUri=... --parameters VpcId=... ...
//
// Context: stackName (default tincan), lambdaDir (default
// $CARGO_TARGET_DIR/lambda or ../target/lambda: cargo-lambda's output).

import * as path from 'node:path';

import { App, DefaultStackSynthesizer } from 'aws-cdk-lib';

import { TincanStack } from '../lib/tincan-stack';

const app = new App();
const repo = path.resolve(__dirname, '..', '..');
const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(repo, 'target');
const lambdaDir = path.resolve(app.node.tryGetContext('lambdaDir') ?? path.join(targetDir, 'lambda'));

new TincanStack(app, app.node.tryGetContext('stackName') ?? 'tincan', {
  lambdaDir,
  description:
    'Tincan: real-time audio calls. WebSocket signaling and the HTTP API on Lambda (Rust, built by cargo-lambda), ' +
    'DynamoDB for live connection state, MongoDB Atlas for accounts, and an Auto Scaling group of TURN media nodes.',
  synthesizer: new DefaultStackSynthesizer(),
});
app.synth();
