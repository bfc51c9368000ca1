CREATE TABLE "cloud_app_security_profiles" (
    "tenant" TEXT COLLATE "C" NOT NULL,
    "id" TEXT COLLATE "C" NOT NULL,
    "azureSubscriptionId" TEXT COLLATE "C",
    "azureTenantId" TEXT COLLATE "C",
    "createdDateTime" BIGINT,
    "deploymentPackageUrl" TEXT COLLATE "C",
    "destinationServiceName" TEXT COLLATE "C",
    "isSigned" BOOLEAN,
    "lastModifiedDateTime" BIGINT,
    "manifest" TEXT COLLATE "C",
    "name" TEXT COLLATE "C",
    "permissionsRequired" INTEGER,
    "platform" TEXT COLLATE "C",
    "policyName" TEXT COLLATE "C",
    "publisher" TEXT COLLATE "C",
    "riskScore" TEXT COLLATE "C",
    "tags" JSONB,
    "type" TEXT COLLATE "C",
    "vendorInformation" INTEGER,
    "vendorInformation_provider" TEXT COLLATE "C",
    "vendorInformation_providerVersion" TEXT COLLATE "C",
    "vendorInformation_subProvider" TEXT COLLATE "C",
    "vendorInformation_vendor" TEXT COLLATE "C",
    "version" BIGINT NOT NULL,
    "dynamic" JSONB NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_cloud_app_security_profiles_azureTenantId" ON "cloud_app_security_profiles" ("tenant", "azureTenantId", "id");

CREATE INDEX "ix_cloud_app_security_profiles_createdDateTime" ON "cloud_app_security_profiles" ("tenant", "createdDateTime", "id");

CREATE INDEX "ix_cloud_app_security_profiles_lastModifiedDateTime" ON "cloud_app_security_profiles" ("tenant", "lastModifiedDateTime", "id");

CREATE INDEX "ix_cloud_app_security_profiles_name" ON "cloud_app_security_profiles" ("tenant", "name", "id");

CREATE INDEX "ix_cloud_app_security_profiles_platform" ON "cloud_app_security_profiles" ("tenant", "platform", "id");

CREATE INDEX "ix_cloud_app_security_profiles_publisher" ON "cloud_app_security_profiles" ("tenant", "publisher", "id");

CREATE TABLE "alerts" (
    "tenant" TEXT COLLATE "C" NOT NULL,
    "id" TEXT COLLATE "C" NOT NULL,
    "activityGroupName" TEXT COLLATE "C",
    "alertDetections" JSONB,
    "assignedTo" TEXT COLLATE "C",
    "azureSubscriptionId" TEXT COLLATE "C",
    "azureTenantId" TEXT COLLATE "C" NOT NULL,
    "category" TEXT COLLATE "C",
    "closedDateTime" BIGINT,
    "cloudAppStates" JSONB,
    "comments" JSONB,
    "confidence" BIGINT,
    "createdDateTime" BIGINT,
    "description" TEXT COLLATE "C",
    "detectionIds" JSONB,
    "eventDateTime" BIGINT,
    "feedback" INTEGER,
    "fileStates" JSONB,
    "historyStates" JSONB,
    "hostStates" JSONB,
    "incidentIds" JSONB,
    "investigationSecurityStates" JSONB,
    "lastEventDateTime" BIGINT,
    "lastModifiedDateTime" BIGINT,
    "malwareStates" JSONB,
    "messageSecurityStates" JSONB,
    "networkConnections" JSONB,
    "processes" JSONB,
    "recommendedActions" JSONB,
    "registryKeyStates" JSONB,
    "securityResources" JSONB,
    "severity" INTEGER NOT NULL,
    "sourceMaterials" JSONB,
    "status" INTEGER NOT NULL,
    "tags" JSONB,
    "title" TEXT COLLATE "C",
    "triggers" JSONB,
    "uriClickSecurityStates" JSONB,
    "userStates" JSONB,
    "vendorInformation" INTEGER,
    "vendorInformation_provider" TEXT COLLATE "C",
    "vendorInformation_providerVersion" TEXT COLLATE "C",
    "vendorInformation_subProvider" TEXT COLLATE "C",
    "vendorInformation_vendor" TEXT COLLATE "C",
    "vulnerabilityStates" JSONB,
    "version" BIGINT NOT NULL,
    "dynamic" JSONB NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_alerts_azureTenantId" ON "alerts" ("tenant", "azureTenantId", "id");

CREATE INDEX "ix_alerts_createdDateTime" ON "alerts" ("tenant", "createdDateTime", "id");

CREATE INDEX "ix_alerts_severity" ON "alerts" ("tenant", "severity", "id");

CREATE INDEX "ix_alerts_status" ON "alerts" ("tenant", "status", "id");

CREATE TABLE "domain_security_profiles" (
    "tenant" TEXT COLLATE "C" NOT NULL,
    "id" TEXT COLLATE "C" NOT NULL,
    "activityGroupNames" JSONB,
    "azureSubscriptionId" TEXT COLLATE "C",
    "azureTenantId" TEXT COLLATE "C" NOT NULL,
    "countHits" BIGINT,
    "countInOrg" BIGINT,
    "domainCategories" JSONB,
    "domainRegisteredDateTime" BIGINT,
    "firstSeenDateTime" BIGINT,
    "lastSeenDateTime" BIGINT,
    "name" TEXT COLLATE "C",
    "registrant" INTEGER,
    "registrant_countryOrRegionCode" TEXT COLLATE "C",
    "registrant_organization" TEXT COLLATE "C",
    "registrant_url" TEXT COLLATE "C",
    "registrant_vendor" TEXT COLLATE "C",
    "riskScore" TEXT COLLATE "C",
    "tags" JSONB,
    "vendorInformation" INTEGER,
    "vendorInformation_provider" TEXT COLLATE "C",
    "vendorInformation_providerVersion" TEXT COLLATE "C",
    "vendorInformation_subProvider" TEXT COLLATE "C",
    "vendorInformation_vendor" TEXT COLLATE "C",
    "version" BIGINT NOT NULL,
    "dynamic" JSONB NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_domain_security_profiles_azureTenantId" ON "domain_security_profiles" ("tenant", "azureTenantId", "id");

CREATE TABLE "file_security_profiles" (
    "tenant" TEXT COLLATE "C" NOT NULL,
    "id" TEXT COLLATE "C" NOT NULL,
    "activityGroupNames" JSONB,
    "azureSubscriptionId" TEXT COLLATE "C",
    "azureTenantId" TEXT COLLATE "C" NOT NULL,
    "certificateThumbprint" TEXT COLLATE "C",
    "extensions" JSONB,
    "fileType" TEXT COLLATE "C",
    "firstSeenDateTime" BIGINT,
    "hashes" JSONB,
    "lastSeenDateTime" BIGINT,
    "malwareStates" JSONB,
    "names" JSONB,
    "riskScore" TEXT COLLATE "C",
    "size" BIGINT,
    "tags" JSONB,
    "vendorInformation" INTEGER,
    "vendorInformation_provider" TEXT COLLATE "C",
    "vendorInformation_providerVersion" TEXT COLLATE "C",
    "vendorInformation_subProvider" TEXT COLLATE "C",
    "vendorInformation_vendor" TEXT COLLATE "C",
    "vulnerabilityStates" JSONB,
    "version" BIGINT NOT NULL,
    "dynamic" JSONB NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_file_security_profiles_azureTenantId" ON "file_security_profiles" ("tenant", "azureTenantId", "id");

CREATE TABLE "host_security_profiles" (
    "tenant" TEXT COLLATE "C" NOT NULL,
    "id" TEXT COLLATE "C" NOT NULL,
    "azureSubscriptionId" TEXT COLLATE "C",
    "azureTenantId" TEXT COLLATE "C" NOT NULL,
    "firstSeenDateTime" BIGINT,
    "fqdn" TEXT COLLATE "C",
    "isAzureAdJoined" BOOLEAN,
    "isAzureAdRegistered" BOOLEAN,
    "isHybridAzureDomainJoined" BOOLEAN,
    "lastSeenDateTime" BIGINT,
    "logonUsers" JSONB,
    "netBiosName" TEXT COLLATE "C",
    "networkInterfaces" JSONB,
    "os" TEXT COLLATE "C",
    "osVersion" TEXT COLLATE "C",
    "parentHost" TEXT COLLATE "C",
    "relatedHostIds" JSONB,
    "riskScore" TEXT COLLATE "C",
    "tags" JSONB,
    "vendorInformation" INTEGER,
    "vendorInformation_provider" TEXT COLLATE "C",
    "vendorInformation_providerVersion" TEXT COLLATE "C",
    "vendorInformation_subProvider" TEXT COLLATE "C",
    "vendorInformation_vendor" TEXT COLLATE "C",
    "version" BIGINT NOT NULL,
    "dynamic" JSONB NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_host_security_profiles_azureTenantId" ON "host_security_profiles" ("tenant", "azureTenantId", "id");

CREATE TABLE "ip_security_profiles" (
    "tenant" TEXT COLLATE "C" NOT NULL,
    "id" TEXT COLLATE "C" NOT NULL,
    "activityGroupNames" JSONB,
    "address" TEXT COLLATE "C",
    "azureSubscriptionId" TEXT COLLATE "C",
    "azureTenantId" TEXT COLLATE "C" NOT NULL,
    "countHits" BIGINT,
    "countHosts" BIGINT,
    "firstSeenDateTime" BIGINT,
    "ipCategories" JSONB,
    "ipReferenceData" JSONB,
    "lastSeenDateTime" BIGINT,
    "riskScore" TEXT COLLATE "C",
    "tags" JSONB,
    "vendorInformation" INTEGER,
    "vendorInformation_provider" TEXT COLLATE "C",
    "vendorInformation_providerVersion" TEXT COLLATE "C",
    "vendorInformation_subProvider" TEXT COLLATE "C",
    "vendorInformation_vendor" TEXT COLLATE "C",
    "version" BIGINT NOT NULL,
    "dynamic" JSONB NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_ip_security_profiles_azureTenantId" ON "ip_security_profiles" ("tenant", "azureTenantId", "id");

CREATE TABLE "provider_tenant_settings" (
    "tenant" TEXT COLLATE "C" NOT NULL,
    "id" TEXT COLLATE "C" NOT NULL,
    "azureTenantId" TEXT COLLATE "C" NOT NULL,
    "enabled" BOOLEAN,
    "lastModifiedDateTime" BIGINT,
    "provider" TEXT COLLATE "C",
    "vendor" TEXT COLLATE "C",
    "version" BIGINT NOT NULL,
    "dynamic" JSONB NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_provider_tenant_settings_azureTenantId" ON "provider_tenant_settings" ("tenant", "azureTenantId", "id");

CREATE TABLE "secure_score_control_profiles" (
    "tenant" TEXT COLLATE "C" NOT NULL,
    "id" TEXT COLLATE "C" NOT NULL,
    "actionType" TEXT COLLATE "C",
    "actionUrl" TEXT COLLATE "C",
    "azureTenantId" TEXT COLLATE "C" NOT NULL,
    "complianceInformation" JSONB,
    "controlCategory" TEXT COLLATE "C",
    "controlStateUpdates" JSONB,
    "deprecated" BOOLEAN,
    "implementationCost" TEXT COLLATE "C",
    "lastModifiedDateTime" BIGINT,
    "maxScore" DOUBLE PRECISION,
    "rank" BIGINT,
    "remediation" TEXT COLLATE "C",
    "remediationImpact" TEXT COLLATE "C",
    "service" TEXT COLLATE "C",
    "threats" JSONB,
    "tier" TEXT COLLATE "C",
    "title" TEXT COLLATE "C",
    "userImpact" TEXT COLLATE "C",
    "vendorInformation" INTEGER,
    "vendorInformation_provider" TEXT COLLATE "C",
    "vendorInformation_providerVersion" TEXT COLLATE "C",
    "vendorInformation_subProvider" TEXT COLLATE "C",
    "vendorInformation_vendor" TEXT COLLATE "C",
    "version" BIGINT NOT NULL,
    "dynamic" JSONB NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_secure_score_control_profiles_azureTenantId" ON "secure_score_control_profiles" ("tenant", "azureTenantId", "id");

CREATE INDEX "ix_secure_score_control_profiles_controlCategory" ON "secure_score_control_profiles" ("tenant", "controlCategory", "id");

CREATE TABLE "secure_scores" (
    "tenant" TEXT COLLATE "C" NOT NULL,
    "id" TEXT COLLATE "C" NOT NULL,
    "activeUserCount" BIGINT,
    "averageComparativeScores" JSONB,
    "azureTenantId" TEXT COLLATE "C" NOT NULL,
    "controlScores" JSONB,
    "createdDateTime" BIGINT,
    "currentScore" DOUBLE PRECISION,
    "enabledServices" JSONB,
    "licensedUserCount" BIGINT,
    "maxScore" DOUBLE PRECISION,
    "vendorInformation" INTEGER,
    "vendorInformation_provider" TEXT COLLATE "C",
    "vendorInformation_providerVersion" TEXT COLLATE "C",
    "vendorInformation_subProvider" TEXT COLLATE "C",
    "vendorInformation_vendor" TEXT COLLATE "C",
    "version" BIGINT NOT NULL,
    "dynamic" JSONB NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_secure_scores_azureTenantId" ON "secure_scores" ("tenant", "azureTenantId", "id");

CREATE INDEX "ix_secure_scores_createdDateTime" ON "secure_scores" ("tenant", "createdDateTime", "id");

CREATE TABLE "security_actions" (
    "tenant" TEXT COLLATE "C" NOT NULL,
    "id" TEXT COLLATE "C" NOT NULL,
    "actionReason" TEXT COLLATE "C",
    "appId" TEXT COLLATE "C",
    "azureTenantId" TEXT COLLATE "C",
    "clientContext" TEXT COLLATE "C",
    "completedDateTime" BIGINT,
    "createdDateTime" BIGINT,
    "errorInfo" INTEGER,
    "errorInfo_code" BIGINT,
    "errorInfo_message" TEXT COLLATE "C",
    "errorInfo_subcode" BIGINT,
    "lastActionDateTime" BIGINT,
    "name" TEXT COLLATE "C",
    "parameters" JSONB,
    "states" JSONB,
    "status" INTEGER,
    "user" TEXT COLLATE "C",
    "vendorInformation" INTEGER,
    "vendorInformation_provider" TEXT COLLATE "C",
    "vendorInformation_providerVersion" TEXT COLLATE "C",
    "vendorInformation_subProvider" TEXT COLLATE "C",
    "vendorInformation_vendor" TEXT COLLATE "C",
    "version" BIGINT NOT NULL,
    "dynamic" JSONB NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_security_actions_azureTenantId" ON "security_actions" ("tenant", "azureTenantId", "id");

CREATE INDEX "ix_security_actions_createdDateTime" ON "security_actions" ("tenant", "createdDateTime", "id");

CREATE TABLE "ti_indicators" (
    "tenant" TEXT COLLATE "C" NOT NULL,
    "id" TEXT COLLATE "C" NOT NULL,
    "action" INTEGER,
    "activityGroupNames" JSONB,
    "additionalInformation" TEXT COLLATE "C",
    "azureTenantId" TEXT COLLATE "C",
    "confidence" BIGINT,
    "description" TEXT COLLATE "C",
    "diamondModel" INTEGER,
    "domainName" TEXT COLLATE "C",
    "emailEncoding" TEXT COLLATE "C",
    "emailLanguage" TEXT COLLATE "C",
    "emailRecipient" TEXT COLLATE "C",
    "emailSenderAddress" TEXT COLLATE "C",
    "emailSenderName" TEXT COLLATE "C",
    "emailSourceDomain" TEXT COLLATE "C",
    "emailSourceIpAddress" TEXT COLLATE "C",
    "emailSubject" TEXT COLLATE "C",
    "emailXMailer" TEXT COLLATE "C",
    "expirationDateTime" BIGINT,
    "externalId" TEXT COLLATE "C",
    "fileCompileDateTime" BIGINT,
    "fileCreatedDateTime" BIGINT,
    "fileHashType" INTEGER,
    "fileHashValue" TEXT COLLATE "C",
    "fileMutexName" TEXT COLLATE "C",
    "fileName" TEXT COLLATE "C",
    "filePacker" TEXT COLLATE "C",
    "filePath" TEXT COLLATE "C",
    "fileSize" BIGINT,
    "fileType" TEXT COLLATE "C",
    "ingestedDateTime" BIGINT,
    "isActive" BOOLEAN,
    "killChain" JSONB,
    "knownFalsePositives" TEXT COLLATE "C",
    "lastReportedDateTime" BIGINT,
    "malwareFamilyNames" JSONB,
    "networkCidrBlock" TEXT COLLATE "C",
    "networkDestinationAsn" BIGINT,
    "networkDestinationCidrBlock" TEXT COLLATE "C",
    "networkDestinationIPv4" TEXT COLLATE "C",
    "networkDestinationIPv6" TEXT COLLATE "C",
    "networkDestinationPort" BIGINT,
    "networkIPv4" TEXT COLLATE "C",
    "networkIPv6" TEXT COLLATE "C",
    "networkPort" BIGINT,
    "networkProtocol" BIGINT,
    "networkSourceAsn" BIGINT,
    "networkSourceCidrBlock" TEXT COLLATE "C",
    "networkSourceIPv4" TEXT COLLATE "C",
    "networkSourceIPv6" TEXT COLLATE "C",
    "networkSourcePort" BIGINT,
    "passiveOnly" BOOLEAN,
    "severity" BIGINT,
    "tags" JSONB,
    "targetProduct" TEXT COLLATE "C" NOT NULL,
    "threatType" TEXT COLLATE "C",
    "tlpLevel" INTEGER,
    "url" TEXT COLLATE "C",
    "userAgent" TEXT COLLATE "C",
    "version" BIGINT NOT NULL,
    "dynamic" JSONB NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_ti_indicators_azureTenantId" ON "ti_indicators" ("tenant", "azureTenantId", "id");

CREATE INDEX "ix_ti_indicators_expirationDateTime" ON "ti_indicators" ("tenant", "expirationDateTime", "id");

CREATE INDEX "ix_ti_indicators_externalId" ON "ti_indicators" ("tenant", "externalId", "id");

CREATE INDEX "ix_ti_indicators_targetProduct" ON "ti_indicators" ("tenant", "targetProduct", "id");

CREATE TABLE "user_security_profiles" (
    "tenant" TEXT COLLATE "C" NOT NULL,
    "id" TEXT COLLATE "C" NOT NULL,
    "accounts" JSONB,
    "azureSubscriptionId" TEXT COLLATE "C",
    "azureTenantId" TEXT COLLATE "C" NOT NULL,
    "createdDateTime" BIGINT,
    "displayName" TEXT COLLATE "C",
    "lastModifiedDateTime" BIGINT,
    "riskScore" TEXT COLLATE "C",
    "tags" JSONB,
    "userPrincipalName" TEXT COLLATE "C",
    "vendorInformation" INTEGER,
    "vendorInformation_provider" TEXT COLLATE "C",
    "vendorInformation_providerVersion" TEXT COLLATE "C",
    "vendorInformation_subProvider" TEXT COLLATE "C",
    "vendorInformation_vendor" TEXT COLLATE "C",
    "version" BIGINT NOT NULL,
    "dynamic" JSONB NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_user_security_profiles_azureTenantId" ON "user_security_profiles" ("tenant", "azureTenantId", "id");
