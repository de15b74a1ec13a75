// Alarms, their SNS topic and the dashboard: the resources of
// monitoring.json, which template.yaml inlines under "watching"
// (tests/infra/test_templates.py compares them). They are CloudFormation
// as it is, so both templates carry exactly the same alarms.

import { readFileSync } from 'node:fs';
import * as path from 'node:path';

import { CfnCondition, CfnResource, Stack } from 'aws-cdk-lib';

interface RawResource {
  Type: string;
  Condition?: string;
  Properties: Record<string, unknown>;
}

/** Adds every resource of monitoring.json under its own logical ID. */
export function defineMonitoring(stack: Stack, conditions: Record<string, CfnCondition>): void {
  const file = path.join(__dirname, 'monitoring.json');
  const { Resources } = JSON.parse(readFileSync(file, 'utf8')) as {
    Resources: Record<string, RawResource>;
  };
  for (const [id, raw] of Object.entries(Resources)) {
    const resource = new CfnResource(stack, id, { type: raw.Type, properties: raw.Properties });
    resource.overrideLogicalId(id);
    if (raw.Condition) {
      const condition = conditions[raw.Condition];
      if (!condition) {
        throw new Error(`monitoring.json: ${id} uses unknown condition ${raw.Condition}`);
      }
      resource.cfnOptions.condition = condition;
    }
  }
}
