/* One row per CloudTrail record of `access_records(source_object, record_index, rec)` that opens, changes or
   closes a path to the keys: the typed access_events columns plus `reason` (why the record must be quarantined,
   NULL when it is good). `path_kind` is one of
     vpc_peering       EC2 Create/Accept (open), Delete/Reject (close) VpcPeeringConnection; path_id pcx-…
     transit_gateway   EC2 Create/Accept (open), Delete/Reject (close) TransitGatewayVpcAttachment; tgw-attach-…
     security_group    EC2 Authorize (open), Revoke (close) SecurityGroupIngress, ModifySecurityGroupRules (change)
     cloudhsm          cloudhsm CreateCluster/CreateHsm/RestoreBackup/CopyBackupToRegion (open),
                       DeleteCluster/DeleteHsm/DeleteBackup (close); path_id the cluster (a backup: its id)
     kms_grant         KMS CreateGrant (open), RetireGrant/RevokeGrant (close); path_id the grant id
     key_policy        KMS PutKeyPolicy, CreateKey with a policy (change); path_id the key ARN
     custom_key_store  KMS ConnectCustomKeyStore (open), Disconnect/DeleteCustomKeyStore (close), Create/
                       UpdateCustomKeyStore (change); path_id cks-…
   The EC2 shapes are the query API's as CloudTrail writes them (lists as {"items": [...]}); the newer EC2 calls
   wrap their parameters in "<Name>Request"/"<Name>Response" objects with capitalised names: both are read. */
WITH extracted AS (
    SELECT source_object, record_index, rec,
           json_extract_string(rec, [
               '$.eventTime', '$.eventID', '$.eventSource', '$.eventName', '$.awsRegion',                    -- 1-5
               '$.recipientAccountId', '$.userIdentity.accountId', '$.userIdentity.type',                    -- 6-8
               '$.userIdentity.arn', '$.userIdentity.principalId', '$.sourceIPAddress', '$.userAgent',       -- 9-12
               '$.errorCode', '$.requestParameters', '$.responseElements', '$.additionalEventData',         -- 13-16
               '$.resources'                                                                                  -- 17
           ]) AS v
    FROM access_records
    WHERE json_valid(rec)
),
named AS (
    SELECT *,
           v[4] AS event_name,
           coalesce(v[14], '{}') AS req,
           coalesce(v[15], '{}') AS resp,
           coalesce(v[16], '{}') AS extra,
           -- the newer EC2 calls: {"<Name>Request": {...}} / {"<Name>Response": {...}}
           coalesce(json_extract(v[14], '$.' || v[4] || 'Request'), '{}') AS wreq,
           coalesce(json_extract(v[15], '$.' || v[4] || 'Response'), '{}') AS wresp
    FROM extracted
),
peering AS (
    -- the peering's two sides; the peer is the side the recipient account does not own
    SELECT *,
           coalesce(json_extract(resp, '$.vpcPeeringConnection'), '{}') AS pcx,
           coalesce(CASE WHEN json_extract_string(resp, '$.vpcPeeringConnection.requesterVpcInfo.ownerId') = v[6]
                         THEN json_extract(resp, '$.vpcPeeringConnection.accepterVpcInfo')
                         ELSE json_extract(resp, '$.vpcPeeringConnection.requesterVpcInfo') END, '{}') AS peer
    FROM named
),
kinds AS (
    SELECT *,
           CASE WHEN v[3] = 'ec2.amazonaws.com' AND event_name LIKE '%VpcPeeringConnection' THEN 'vpc_peering'
                WHEN v[3] = 'ec2.amazonaws.com' AND event_name LIKE '%TransitGatewayVpcAttachment'
                    THEN 'transit_gateway'
                WHEN v[3] = 'ec2.amazonaws.com' AND event_name IN ('AuthorizeSecurityGroupIngress',
                     'RevokeSecurityGroupIngress', 'ModifySecurityGroupRules') THEN 'security_group'
                WHEN v[3] = 'cloudhsm.amazonaws.com' THEN 'cloudhsm'
                WHEN event_name IN ('CreateGrant', 'RetireGrant', 'RevokeGrant') THEN 'kms_grant'
                WHEN event_name IN ('PutKeyPolicy', 'CreateKey') THEN 'key_policy'
                WHEN event_name LIKE '%CustomKeyStore' THEN 'custom_key_store'
           END AS path_kind,
           CASE WHEN regexp_matches(event_name, '^(Create|Accept|Authorize|Connect|RestoreBackup|CopyBackup)')
                     AND event_name NOT IN ('CreateKey', 'CreateCustomKeyStore') THEN 'open'
                WHEN regexp_matches(event_name, '^(Delete|Reject|Revoke|Retire|Disconnect)') THEN 'close'
                ELSE 'change'
           END AS action,
           list_filter(json_extract_string(v[17], '$[*].ARN'), lambda a: a LIKE 'arn:%:kms:%:key/%')[1] AS key_resource,
           json_extract_string(req, '$.policy') AS policy
    FROM peering
),
typed AS (
    SELECT *,
           try_cast(v[1] AS TIMESTAMPTZ) AS event_time,
           coalesce(
               json_extract_string(pcx, '$.vpcPeeringConnectionId'),
               json_extract_string(req, '$.vpcPeeringConnectionId'),
               json_extract_string(wresp, '$.transitGatewayVpcAttachment.transitGatewayAttachmentId'),
               json_extract_string(wreq, '$.TransitGatewayAttachmentId'),
               json_extract_string(req, '$.transitGatewayAttachmentId')
           ) AS network_path,
           coalesce(json_extract_string(req, '$.groupId'), json_extract_string(wreq, '$.GroupId')) AS group_id,
           coalesce(json_extract_string(resp, '$.cluster.clusterId'), json_extract_string(req, '$.clusterId'),
                    json_extract_string(resp, '$.hsm.clusterId'), json_extract_string(extra, '$.clusterId'),
                    json_extract_string(resp, '$.backup.clusterId')) AS cluster,
           coalesce(json_extract_string(resp, '$.grantId'), json_extract_string(req, '$.grantId'),
                    json_extract_string(extra, '$.grantId')) AS grant,
           coalesce(json_extract_string(req, '$.customKeyStoreId'),
                    json_extract_string(resp, '$.customKeyStoreId')) AS store
    FROM kinds
)
SELECT
    event_time,
    v[2] AS event_id,
    v[3] AS event_source,
    event_name,
    path_kind,
    action,
    CASE path_kind
        WHEN 'vpc_peering' THEN network_path
        WHEN 'transit_gateway' THEN network_path
        WHEN 'security_group' THEN group_id
        WHEN 'cloudhsm' THEN CASE WHEN event_name LIKE '%Backup%' AND event_name <> 'RestoreBackup'
                                  THEN coalesce(json_extract_string(req, '$.backupId'),
                                                json_extract_string(resp, '$.backup.backupId'))
                                  ELSE cluster END
        WHEN 'kms_grant' THEN grant
        WHEN 'key_policy' THEN key_resource
        WHEN 'custom_key_store' THEN store
    END AS path_id,
    v[5] AS aws_region,
    v[6] AS recipient_account_id,
    v[7] AS caller_account_id,
    v[8] AS identity_type,
    v[9] AS principal_arn,
    v[10] AS principal_id,
    v[11] AS source_ip,
    v[12] AS user_agent,
    coalesce(json_extract_string(peer, '$.ownerId'), json_extract_string(req, '$.peerOwnerId'),
             json_extract_string(wresp, '$.transitGatewayVpcAttachment.vpcOwnerId')) AS peer_account_id,
    coalesce(json_extract_string(peer, '$.vpcId'), json_extract_string(req, '$.peerVpcId'),
             json_extract_string(wresp, '$.transitGatewayVpcAttachment.vpcId'),
             json_extract_string(wreq, '$.VpcId')) AS peer_vpc_id,
    CASE path_kind
        WHEN 'vpc_peering' THEN list_distinct(list_filter(
            [json_extract_string(peer, '$.cidrBlock')]
                || coalesce(json_extract_string(peer, '$.cidrBlockSet.items[*].cidrBlock'), []::VARCHAR[]),
            lambda c: c IS NOT NULL))
        WHEN 'security_group' THEN list_distinct(
            coalesce(json_extract_string(req, '$.ipPermissions.items[*].ipRanges.items[*].cidrIp'), []::VARCHAR[])
                || coalesce(json_extract_string(req, '$.ipPermissions.items[*].ipv6Ranges.items[*].cidrIpv6'), []::VARCHAR[])
                || coalesce(json_extract_string(wreq, '$.SecurityGroupRule[*].SecurityGroupRule.CidrIpv4'), []::VARCHAR[])
                || list_filter([json_extract_string(wreq, '$.SecurityGroupRule.SecurityGroupRule.CidrIpv4')],
                               lambda c: c IS NOT NULL))
    END AS cidrs,
    -- a rule whose source is another security group (across a peering, the provider's): "<owner>/sg-…", from the
    -- request's user-group pairs and the new rules' referencedGroupInfo (no owner: the group's own account)
    -- (a rule or pair that names no group gives NULL, dropped by list_distinct)
    CASE WHEN path_kind = 'security_group' THEN list_distinct(list_transform(
            coalesce(json_extract(req, '$.ipPermissions.items[*].groups.items[*]'), []::JSON[])
                || coalesce(json_extract(resp, '$.securityGroupRuleSet.items[*].referencedGroupInfo'), []::JSON[])
                || coalesce(json_extract(wreq, '$.SecurityGroupRule[*].SecurityGroupRule'), []::JSON[])
                || [json_extract(wreq, '$.SecurityGroupRule.SecurityGroupRule')],
            lambda g: source_group(coalesce(json_extract_string(g, '$.groupId'),
                                            json_extract_string(g, '$.ReferencedGroupId')),
                                   coalesce(json_extract_string(g, '$.userId'), v[6]))))
    END AS source_groups,
    CASE WHEN path_kind = 'security_group' THEN group_id
         WHEN path_kind = 'cloudhsm' THEN json_extract_string(resp, '$.cluster.securityGroup') END AS security_group_id,
    CASE WHEN path_kind = 'security_group' THEN list_distinct(
            coalesce(json_extract_string(resp, '$.securityGroupRuleSet.items[*].securityGroupRuleId'), []::VARCHAR[])
                || coalesce(json_extract_string(req, '$.securityGroupRuleIds.items[*].securityGroupRuleId'), []::VARCHAR[])
                || coalesce(json_extract_string(wreq, '$.SecurityGroupRule[*].SecurityGroupRuleId'), []::VARCHAR[])
                || list_filter([json_extract_string(wreq, '$.SecurityGroupRule.SecurityGroupRuleId')],
                               lambda c: c IS NOT NULL)) END AS rule_ids,
    CASE WHEN path_kind IN ('kms_grant', 'key_policy') THEN key_resource END AS key_arn,
    CASE WHEN path_kind = 'kms_grant' THEN grant END AS grant_id,
    json_extract_string(req, '$.granteePrincipal') AS grantee_principal,
    CASE WHEN path_kind = 'key_policy' THEN policy_principals(policy) END AS policy_principals,
    CASE WHEN path_kind = 'custom_key_store' THEN store END AS custom_key_store_id,
    CASE WHEN path_kind IN ('cloudhsm', 'custom_key_store') THEN cluster END AS cluster_id,
    coalesce(json_extract_string(resp, '$.hsm.hsmId'), json_extract_string(req, '$.hsmId')) AS hsm_id,
    v[13] AS error_code,
    v[13] IS NULL AS success,
    source_object,
    record_index::INTEGER AS record_index,
    CASE
        WHEN v[2] IS NULL THEN 'missing required field eventID'
        WHEN event_time IS NULL THEN 'eventTime ' || coalesce(to_json(v[1]), 'missing') || ' is not an ISO 8601 time'
        WHEN v[6] IS NULL OR NOT regexp_full_match(v[6], '[0-9]{12}')
            THEN 'recipientAccountId ' || coalesce(to_json(v[6]), 'missing') || ' is not a 12-digit AWS account id'
    END AS reason
FROM typed
WHERE path_kind IS NOT NULL AND (path_kind <> 'key_policy' OR policy IS NOT NULL)
