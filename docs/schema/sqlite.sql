CREATE TABLE "cloud_app_security_profiles" (
    "tenant" TEXT NOT NULL,
    "id" TEXT NOT NULL,
    "azureSubscriptionId" TEXT,
    "azureTenantId" TEXT,
    "createdDateTime" BIGINT,
    "deploymentPackageUrl" TEXT,
    "destinationServiceName" TEXT,
    "isSigned" INTEGER,
    "lastModifiedDateTime" BIGINT,
    "manifest" TEXT,
    "name" TEXT,
    "permissionsRequired" INTEGER,
    "platform" TEXT,
    "policyName" TEXT,
    "publisher" TEXT,
    "riskScore" TEXT,
    "tags" TEXT,
    "type" TEXT,
    "vendorInformation" INTEGER,
    "vendorInformation_provider" TEXT,
    "vendorInformation_providerVersion" TEXT,
    "vendorInformation_subProvider" TEXT,
    "vendorInformation_vendor" TEXT,
    "version" BIGINT NOT NULL,
    "dynamic" TEXT NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_cloud_app_security_profiles_azureTenantId" ON "cloud_app_security_profiles" ("tenant", "azureTenantId", "id");

CREATE INDEX "ix_cloud_app_security_profiles_createdDateTime" ON "cloud_app_security_profiles" ("tenant", "createdDateTime", "id");

CREATE INDEX "ix_cloud_app_security_profiles_lastModifiedDateTime" ON "cloud_app_security_profiles" ("tenant", "lastModifiedDateTime", "id");

CREATE INDEX "ix_cloud_app_security_profiles_name" ON "cloud_app_security_profiles" ("tenant", "name", "id");

CREATE INDEX "ix_cloud_app_security_profiles_platform" ON "cloud_app_security_profiles" ("tenant", "platform", "id");

CREATE INDEX "ix_cloud_app_security_profiles_publisher" ON "cloud_app_security_profiles" ("tenant", "publisher", "id");

CREATE TABLE "alerts" (
    "tenant" TEXT NOT NULL,
    "id" TEXT NOT NULL,
    "activityGroupName" TEXT,
    "alertDetections" TEXT,
    "assignedTo" TEXT,
    "azureSubscriptionId" TEXT,
    "azureTenantId" TEXT NOT NULL,
    "category" TEXT,
    "closedDateTime" BIGINT,
    "cloudAppStates" TEXT,
    "comments" TEXT,
    "confidence" BIGINT,
    "createdDateTime" BIGINT,
    "description" TEXT,
    "detectionIds" TEXT,
    "eventDateTime" BIGINT,
    "feedback" INTEGER,
    "fileStates" TEXT,
    "historyStates" TEXT,
    "hostStates" TEXT,
    "incidentIds" TEXT,
    "investigationSecurityStates" TEXT,
    "lastEventDateTime" BIGINT,
    "lastModifiedDateTime" BIGINT,
    "malwareStates" TEXT,
    "messageSecurityStates" TEXT,
    "networkConnections" TEXT,
    "processes" TEXT,
    "recommendedActions" TEXT,
    "registryKeyStates" TEXT,
    "securityResources" TEXT,
    "severity" INTEGER NOT NULL,
    "sourceMaterials" TEXT,
    "status" INTEGER NOT NULL,
    "tags" TEXT,
    "title" TEXT,
    "triggers" TEXT,
    "uriClickSecurityStates" TEXT,
    "userStates" TEXT,
    "vendorInformation" INTEGER,
    "vendorInformation_provider" TEXT,
    "vendorInformation_providerVersion" TEXT,
    "vendorInformation_subProvider" TEXT,
    "vendorInformation_vendor" TEXT,
    "vulnerabilityStates" TEXT,
    "version" BIGINT NOT NULL,
    "dynamic" TEXT NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_alerts_azureTenantId" ON "alerts" ("tenant", "azureTenantId", "id");

CREATE INDEX "ix_alerts_createdDateTime" ON "alerts" ("tenant", "createdDateTime", "id");

CREATE INDEX "ix_alerts_severity" ON "alerts" ("tenant", "severity", "id");

CREATE INDEX "ix_alerts_status" ON "alerts" ("tenant", "status", "id");

CREATE TABLE "domain_security_profiles" (
    "tenant" TEXT NOT NULL,
    "id" TEXT NOT NULL,
    "activityGroupNames" TEXT,
    "azureSubscriptionId" TEXT,
    "azureTenantId" TEXT NOT NULL,
    "countHits" BIGINT,
    "countInOrg" BIGINT,
    "domainCategories" TEXT,
    "domainRegisteredDateTime" BIGINT,
    "firstSeenDateTime" BIGINT,
    "lastSeenDateTime" BIGINT,
    "name" TEXT,
    "registrant" INTEGER,
    "registrant_countryOrRegionCode" TEXT,
    "registrant_organization" TEXT,
    "registrant_url" TEXT,
    "registrant_vendor" TEXT,
    "riskScore" TEXT,
    "tags" TEXT,
    "vendorInformation" INTEGER,
    "vendorInformation_provider" TEXT,
    "vendorInformation_providerVersion" TEXT,
    "vendorInformation_subProvider" TEXT,
    "vendorInformation_vendor" TEXT,
    "version" BIGINT NOT NULL,
    "dynamic" TEXT NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_domain_security_profiles_azureTenantId" ON "domain_security_profiles" ("tenant", "azureTenantId", "id");

CREATE TABLE "file_security_profiles" (
    "tenant" TEXT NOT NULL,
    "id" TEXT NOT NULL,
    "activityGroupNames" TEXT,
    "azureSubscriptionId" TEXT,
    "azureTenantId" TEXT NOT NULL,
    "certificateThumbprint" TEXT,
    "extensions" TEXT,
    "fileType" TEXT,
    "firstSeenDateTime" BIGINT,
    "hashes" TEXT,
    "lastSeenDateTime" BIGINT,
    "malwareStates" TEXT,
    "names" TEXT,
    "riskScore" TEXT,
    "size" BIGINT,
    "tags" TEXT,
    "vendorInformation" INTEGER,
    "vendorInformation_provider" TEXT,
    "vendorInformation_providerVersion" TEXT,
    "vendorInformation_subProvider" TEXT,
    "vendorInformation_vendor" TEXT,
    "vulnerabilityStates" TEXT,
    "version" BIGINT NOT NULL,
    "dynamic" TEXT NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_file_security_profiles_azureTenantId" ON "file_security_profiles" ("tenant", "azureTenantId", "id");

CREATE TABLE "host_security_profiles" (
    "tenant" TEXT NOT NULL,
    "id" TEXT NOT NULL,
    "azureSubscriptionId" TEXT,
    "azureTenantId" TEXT NOT NULL,
    "firstSeenDateTime" BIGINT,
    "fqdn" TEXT,
    "isAzureAdJoined" INTEGER,
    "isAzureAdRegistered" INTEGER,
    "isHybridAzureDomainJoined" INTEGER,
    "lastSeenDateTime" BIGINT,
    "logonUsers" TEXT,
    "netBiosName" TEXT,
    "networkInterfaces" TEXT,
    "os" TEXT,
    "osVersion" TEXT,
    "parentHost" TEXT,
    "relatedHostIds" TEXT,
    "riskScore" TEXT,
    "tags" TEXT,
    "vendorInformation" INTEGER,
    "vendorInformation_provider" TEXT,
    "vendorInformation_providerVersion" TEXT,
    "vendorInformation_subProvider" TEXT,
    "vendorInformation_vendor" TEXT,
    "version" BIGINT NOT NULL,
    "dynamic" TEXT NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_host_security_profiles_azureTenantId" ON "host_security_profiles" ("tenant", "azureTenantId", "id");

CREATE TABLE "ip_security_profiles" (
    "tenant" TEXT NOT NULL,
    "id" TEXT NOT NULL,
    "activityGroupNames" TEXT,
    "address" TEXT,
    "azureSubscriptionId" TEXT,
    "azureTenantId" TEXT NOT NULL,
    "countHits" BIGINT,
    "countHosts" BIGINT,
    "firstSeenDateTime" BIGINT,
    "ipCategories" TEXT,
    "ipReferenceData" TEXT,
    "lastSeenDateTime" BIGINT,
    "riskScore" TEXT,
    "tags" TEXT,
    "vendorInformation" INTEGER,
    "vendorInformation_provider" TEXT,
    "vendorInformation_providerVersion" TEXT,
    "vendorInformation_subProvider" TEXT,
    "vendorInformation_vendor" TEXT,
    "version" BIGINT NOT NULL,
    "dynamic" TEXT NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_ip_security_profiles_azureTenantId" ON "ip_security_profiles" ("tenant", "azureTenantId", "id");

CREATE TABLE "provider_tenant_settings" (
    "tenant" TEXT NOT NULL,
    "id" TEXT NOT NULL,
    "azureTenantId" TEXT NOT NULL,
    "enabled" INTEGER,
    "lastModifiedDateTime" BIGINT,
    "provider" TEXT,
    "vendor" TEXT,
    "version" BIGINT NOT NULL,
    "dynamic" TEXT NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_provider_tenant_settings_azureTenantId" ON "provider_tenant_settings" ("tenant", "azureTenantId", "id");

CREATE TABLE "secure_score_control_profiles" (
    "tenant" TEXT NOT NULL,
    "id" TEXT NOT NULL,
    "actionType" TEXT,
    "actionUrl" TEXT,
    "azureTenantId" TEXT NOT NULL,
    "complianceInformation" TEXT,
    "controlCategory" TEXT,
    "controlStateUpdates" TEXT,
    "deprecated" INTEGER,
    "implementationCost" TEXT,
    "lastModifiedDateTime" BIGINT,
    "maxScore" REAL,
    "rank" BIGINT,
    "remediation" TEXT,
    "remediationImpact" TEXT,
    "service" TEXT,
    "threats" TEXT,
    "tier" TEXT,
    "title" TEXT,
    "userImpact" TEXT,
    "vendorInformation" INTEGER,
    "vendorInformation_provider" TEXT,
    "vendorInformation_providerVersion" TEXT,
    "vendorInformation_subProvider" TEXT,
    "vendorInformation_vendor" TEXT,
    "version" BIGINT NOT NULL,
    "dynamic" TEXT NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_secure_score_control_profiles_azureTenantId" ON "secure_score_control_profiles" ("tenant", "azureTenantId", "id");

CREATE INDEX "ix_secure_score_control_profiles_controlCategory" ON "secure_score_control_profiles" ("tenant", "controlCategory", "id");

CREATE TABLE "secure_scores" (
    "tenant" TEXT NOT NULL,
    "id" TEXT NOT NULL,
    "activeUserCount" BIGINT,
    "averageComparativeScores" TEXT,
    "azureTenantId" TEXT NOT NULL,
    "controlScores" TEXT,
    "createdDateTime" BIGINT,
    "currentScore" REAL,
    "enabledServices" TEXT,
    "licensedUserCount" BIGINT,
    "maxScore" REAL,
    "vendorInformation" INTEGER,
    "vendorInformation_provider" TEXT,
    "vendorInformation_providerVersion" TEXT,
    "vendorInformation_subProvider" TEXT,
    "vendorInformation_vendor" TEXT,
    "version" BIGINT NOT NULL,
    "dynamic" TEXT NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_secure_scores_azureTenantId" ON "secure_scores" ("tenant", "azureTenantId", "id");

CREATE INDEX "ix_secure_scores_createdDateTime" ON "secure_scores" ("tenant", "createdDateTime", "id");

CREATE TABLE "security_actions" (
    "tenant" TEXT NOT NULL,
    "id" TEXT NOT NULL,
    "actionReason" TEXT,
    "appId" TEXT,
    "azureTenantId" TEXT,
    "clientContext" TEXT,
    "completedDateTime" BIGINT,
    "createdDateTime" BIGINT,
    "errorInfo" INTEGER,
    "errorInfo_code" BIGINT,
    "errorInfo_message" TEXT,
    "errorInfo_subcode" BIGINT,
    "lastActionDateTime" BIGINT,
    "name" TEXT,
    "parameters" TEXT,
    "states" TEXT,
    "status" INTEGER,
    "user" TEXT,
    "vendorInformation" INTEGER,
    "vendorInformation_provider" TEXT,
    "vendorInformation_providerVersion" TEXT,
    "vendorInformation_subProvider" TEXT,
    "vendorInformation_vendor" TEXT,
    "version" BIGINT NOT NULL,
    "dynamic" TEXT NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_security_actions_azureTenantId" ON "security_actions" ("tenant", "azureTenantId", "id");

CREATE INDEX "ix_security_actions_createdDateTime" ON "security_actions" ("tenant", "createdDateTime", "id");

CREATE TABLE "ti_indicators" (
    "tenant" TEXT NOT NULL,
    "id" TEXT NOT NULL,
    "action" INTEGER,
    "activityGroupNames" TEXT,
    "additionalInformation" TEXT,
    "azureTenantId" TEXT,
    "confidence" BIGINT,
    "description" TEXT,
    "diamondModel" INTEGER,
    "domainName" TEXT,
    "emailEncoding" TEXT,
    "emailLanguage" TEXT,
    "emailRecipient" TEXT,
    "emailSenderAddress" TEXT,
    "emailSenderName" TEXT,
    "emailSourceDomain" TEXT,
    "emailSourceIpAddress" TEXT,
    "emailSubject" TEXT,
    "emailXMailer" TEXT,
    "expirationDateTime" BIGINT,
    "externalId" TEXT,
    "fileCompileDateTime" BIGINT,
    "fileCreatedDateTime" BIGINT,
    "fileHashType" INTEGER,
    "fileHashValue" TEXT,
    "fileMutexName" TEXT,
    "fileName" TEXT,
    "filePacker" TEXT,
    "filePath" TEXT,
    "fileSize" BIGINT,
    "fileType" TEXT,
    "ingestedDateTime" BIGINT,
    "isActive" INTEGER,
    "killChain" TEXT,
    "knownFalsePositives" TEXT,
    "lastReportedDateTime" BIGINT,
    "malwareFamilyNames" TEXT,
    "networkCidrBlock" TEXT,
    "networkDestinationAsn" BIGINT,
    "networkDestinationCidrBlock" TEXT,
    "networkDestinationIPv4" TEXT,
    "networkDestinationIPv6" TEXT,
    "networkDestinationPort" BIGINT,
    "networkIPv4" TEXT,
    "networkIPv6" TEXT,
    "networkPort" BIGINT,
    "networkProtocol" BIGINT,
    "networkSourceAsn" BIGINT,
    "networkSourceCidrBlock" TEXT,
    "networkSourceIPv4" TEXT,
    "networkSourceIPv6" TEXT,
    "networkSourcePort" BIGINT,
    "passiveOnly" INTEGER,
    "severity" BIGINT,
    "tags" TEXT,
    "targetProduct" TEXT NOT NULL,
    "threatType" TEXT,
    "tlpLevel" INTEGER,
    "url" TEXT,
    "userAgent" TEXT,
    "version" BIGINT NOT NULL,
    "dynamic" TEXT NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_ti_indicators_azureTenantId" ON "ti_indicators" ("tenant", "azureTenantId", "id");

CREATE INDEX "ix_ti_indicators_expirationDateTime" ON "ti_indicators" ("tenant", "expirationDateTime", "id");

CREATE INDEX "ix_ti_indicators_externalId" ON "ti_indicators" ("tenant", "externalId", "id");

CREATE INDEX "ix_ti_indicators_targetProduct" ON "ti_indicators" ("tenant", "targetProduct", "id");

CREATE TABLE "user_security_profiles" (
    "tenant" TEXT NOT NULL,
    "id" TEXT NOT NULL,
    "accounts" TEXT,
    "azureSubscriptionId" TEXT,
    "azureTenantId" TEXT NOT NULL,
    "createdDateTime" BIGINT,
    "displayName" TEXT,
    "lastModifiedDateTime" BIGINT,
    "riskScore" TEXT,
    "tags" TEXT,
    "userPrincipalName" TEXT,
    "vendorInformation" INTEGER,
    "vendorInformation_provider" TEXT,
    "vendorInformation_providerVersion" TEXT,
    "vendorInformation_subProvider" TEXT,
    "vendorInformation_vendor" TEXT,
    "version" BIGINT NOT NULL,
    "dynamic" TEXT NOT NULL,
    PRIMARY KEY ("tenant", "id")
);

CREATE INDEX "ix_user_security_profiles_azureTenantId" ON "user_security_profiles" ("tenant", "azureTenantId", "id");
