/** The MQTT 5 reason codes a PUBACK or PUBREC may carry, by name (MQTT 5 §3.4.2.1, §3.5.2.1). */
const PUBLISH_REASONS: Record<number, string> = {
  0x00: 'Success',
  0x10: 'No matching subscribers',
  0x80: 'Unspecified error',
  0x83: 'Implementation specific error',
  0x87: 'Not authorized',
  0x90: 'Topic Name invalid',
  0x91: 'Packet Identifier in use',
  0x97: 'Quota exceeded',
  0x99: 'Payload format invalid',
};

/** Below 0x80 a reason code is success (0x10: nobody subscribed); from 0x80 on it is a refusal. */
export function isRefusal(reasonCode: number): boolean {
  return reasonCode >= 0x80;
}

/** The dead letter's reason for a refused PUBLISH, e.g. "refused by the broker: Not authorized (PUBREC 0x87)". */
export function describeRefusal(cmd: 'puback' | 'pubrec', reasonCode: number): string {
  const name = PUBLISH_REASONS[reasonCode] ?? 'unknown reason';
  return `refused by the broker: ${name} (${cmd.toUpperCase()} 0x${reasonCode.toString(16).padStart(2, '0')})`;
}
